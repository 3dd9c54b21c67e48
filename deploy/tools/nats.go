package main

import (
	"strings"

	"github.com/nats-io/nats-server/v2/conf"
)

// checkNATS parses a nats-server configuration file with the server's own
// configuration parser (package conf: syntax, includes, variables) and checks
// the settings the service's durability relies on. The server's semantic
// checks (value ranges, unknown fields) are `nats-server -t -c FILE`, which
// validate.sh runs too.
func checkNATS(path string) ([]string, error) {
	m, err := conf.ParseFile(path)
	if err != nil {
		return nil, err
	}
	var p problems
	js, ok := lookup(m, "jetstream").(map[string]any)
	if !ok {
		p.addf("no jetstream { } block (JetStream disabled)")
		js = map[string]any{}
	}
	if enabled, ok := lookup(js, "enabled").(bool); ok && !enabled {
		p.addf("jetstream is disabled")
	}
	if s, _ := lookupAny(js, "sync_interval", "sync").(string); !strings.EqualFold(s, "always") {
		p.addf("jetstream.sync_interval must be \"always\" (fsync before every acknowledgement), got %v", lookupAny(js, "sync_interval", "sync"))
	}
	if s, _ := lookupAny(js, "store_dir", "store", "storedir").(string); s == "" {
		p.addf("jetstream.store_dir is not set (the data would go to a temporary directory)")
	}
	checkPermissions(&p, m)
	cl, ok := lookup(m, "cluster").(map[string]any)
	if !ok {
		p.addf("no cluster { } block")
		return p, nil
	}
	if s, _ := lookup(cl, "name").(string); s == "" {
		p.addf("cluster.name is not set")
	}
	if lookup(cl, "listen") == nil && lookup(cl, "port") == nil {
		p.addf("cluster.listen is not set")
	}
	if tls, ok := lookup(cl, "tls").(map[string]any); !ok {
		p.addf("cluster.tls is not set: the nodes would replicate every event in clear text")
	} else {
		for _, k := range []string{"cert_file", "key_file", "ca_file"} {
			if s, _ := lookup(tls, k).(string); s == "" {
				p.addf("cluster.tls.%s is not set", k)
			}
		}
		if v, _ := lookup(tls, "verify").(bool); !v {
			p.addf("cluster.tls.verify must be true (each node checks the other's certificate)")
		}
	}
	routes, _ := lookup(cl, "routes").([]any)
	if len(routes) < 3 {
		p.addf("cluster.routes lists %d servers, want the 3 nodes", len(routes))
	}
	return p, nil
}

// lookup returns m[key] ignoring case, as nats-server does.
func lookup(m map[string]any, key string) any {
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

func lookupAny(m map[string]any, keys ...string) any {
	for _, k := range keys {
		if v := lookup(m, k); v != nil {
			return v
		}
	}
	return nil
}

// checkPermissions checks the authorization block: the users api,
// projector and reader, each with permissions; only the api may publish
// customer events, claims and counters; every user's publish deny list
// refuses deleting and purging streams and deleting messages, and no allow
// list grants them.
func checkPermissions(p *problems, m map[string]any) {
	authz, ok := lookup(m, "authorization").(map[string]any)
	if !ok {
		p.addf("no authorization { } block: any client could read every customer and forge events")
		return
	}
	users, _ := lookup(authz, "users").([]any)
	seen := map[string]bool{}
	for _, u := range users {
		um, _ := u.(map[string]any)
		name, _ := lookup(um, "user").(string)
		seen[name] = true
		if pw, _ := lookup(um, "password").(string); pw == "" {
			p.addf("user %s has no password", name)
		}
		perms, _ := lookup(um, "permissions").(map[string]any)
		pub, _ := lookup(perms, "publish").(map[string]any)
		if pub == nil {
			p.addf("user %s: no publish permissions (it may publish anything)", name)
			continue
		}
		allow := strings.Join(strs(lookup(pub, "allow")), " ")
		deny := strs(lookup(pub, "deny"))
		if strings.TrimSpace(allow) == "" || strings.Contains(" "+allow+" ", " > ") {
			p.addf("user %s: publish allow must be an explicit list", name)
		}
		for _, d := range []string{"$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.MSG.DELETE.>"} {
			if !contains(deny, d) {
				p.addf("user %s: publish deny lacks %s", name, d)
			}
			if strings.Contains(allow, strings.TrimSuffix(d, ">")) || strings.Contains(allow, "$JS.API.>") || strings.Contains(allow, "$JS.API.STREAM.>") {
				p.addf("user %s: publish allow grants %s", name, d)
			}
		}
		writes := strings.Contains(allow, "crm.customers.") || strings.Contains(allow, "crm.claims.") || strings.Contains(allow, "crm.counters.") || strings.Contains(allow, "crm.>")
		if name != "api" && writes {
			p.addf("user %s may publish customer events (only api may)", name)
		}
		if name == "api" && !writes {
			p.addf("user api cannot publish customer events")
		}
	}
	for _, want := range []string{"api", "projector", "reader"} {
		if !seen[want] {
			p.addf("authorization: user %s is missing", want)
		}
	}
}

func strs(v any) []string {
	var out []string
	switch x := v.(type) {
	case string:
		out = append(out, x)
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

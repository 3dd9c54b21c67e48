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

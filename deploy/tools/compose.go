package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// checkCompose loads the compose file the way `docker compose config` does
// (compose-go is the loader of the docker compose CLI: JSON-schema
// validation, interpolation, merging of anchors, consistency of references)
// with every profile enabled, then checks the cluster wiring that the schema
// cannot know about.
func checkCompose(ctx context.Context, path string) ([]string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	opts, err := cli.NewProjectOptions([]string{abs},
		cli.WithWorkingDirectory(filepath.Dir(abs)),
		cli.WithOsEnv,
		cli.WithDotEnv,
		cli.WithProfiles([]string{"*"}),
		cli.WithResolvedPaths(true),
		cli.WithConsistency(true),
		cli.WithNormalization(true),
		cli.WithInterpolation(true),
	)
	if err != nil {
		return nil, err
	}
	project, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, err
	}
	var p problems
	svc := func(name string) (types.ServiceConfig, bool) {
		s, ok := project.Services[name]
		if !ok {
			p.addf("service %s is missing", name)
		}
		return s, ok
	}

	// NATS: three JetStream nodes sharing one configuration file that the
	// server's parser accepts, each with its own name and volume.
	natsURLs := []string{}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("nats-%d", i)
		s, ok := svc(name)
		if !ok {
			continue
		}
		natsURLs = append(natsURLs, fmt.Sprintf("nats://%s:4222", name))
		if !strings.HasPrefix(s.Image, "nats:2.") {
			p.addf("%s: image %q is not a nats:2.x image", name, s.Image)
		}
		if !slices.Contains(s.Command, "--config") {
			p.addf("%s: command does not pass --config", name)
		}
		if i := slices.Index(s.Command, "--name"); i < 0 || i+1 >= len(s.Command) || s.Command[i+1] != name {
			p.addf("%s: command must pass --name %s (JetStream needs unique server names)", name, name)
		}
		// nats.conf includes ./auth.conf (the users) and names the route
		// TLS files under /etc/nats/certs.
		if mountSource(s, "/etc/nats/auth.conf") == "" {
			p.addf("%s: auth.conf (the users nats.conf includes) is not mounted at /etc/nats/auth.conf", name)
		}
		if mountSource(s, "/etc/nats/certs") == "" {
			p.addf("%s: the route TLS certificates are not mounted at /etc/nats/certs", name)
		}
		conf := mountSource(s, "/etc/nats/nats.conf")
		if conf == "" {
			p.addf("%s: nats.conf is not mounted at /etc/nats/nats.conf", name)
		} else if errs, err := checkNATS(conf); err != nil {
			p.addf("%s: %s", name, strings.TrimSpace(err.Error()))
		} else {
			for _, e := range errs {
				p.addf("%s: %s: %s", name, conf, e)
			}
		}
		if !hasNamedVolume(s, "/data") {
			p.addf("%s: no named volume on /data (the JetStream store would not persist)", name)
		}
		if s.HealthCheck == nil || s.HealthCheck.Disable {
			p.addf("%s: no healthcheck", name)
		}
	}

	// MongoDB: three members of rs0 and an init job that the crm services wait for.
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("mongo-%d", i)
		s, ok := svc(name)
		if !ok {
			continue
		}
		if j := slices.Index(s.Command, "--replSet"); j < 0 || j+1 >= len(s.Command) || s.Command[j+1] != "rs0" {
			p.addf("%s: mongod must run with --replSet rs0", name)
		}
		if !hasNamedVolume(s, "/data/db") {
			p.addf("%s: no named volume on /data/db", name)
		}
	}
	if s, ok := svc("mongo-init"); ok {
		script := mountSource(s, "/init/init-replica-set.js")
		if script == "" {
			p.addf("mongo-init: init-replica-set.js is not mounted")
		} else if b, err := os.ReadFile(script); err != nil {
			p.addf("mongo-init: %v", err)
		} else {
			for _, host := range []string{"mongo-1:27017", "mongo-2:27017", "mongo-3:27017"} {
				if !strings.Contains(string(b), host) {
					p.addf("mongo-init: %s does not list member %s", script, host)
				}
			}
		}
	}

	// The crm processes: the same cluster settings everywhere.
	var ref map[string]string
	for _, name := range []string{"api", "projector", "crmctl"} {
		s, ok := svc(name)
		if !ok {
			continue
		}
		env := environment(s)
		for _, k := range []string{"NATS_URL", "MONGODB_URL", "STREAM_REPLICAS", "STREAM_DUPLICATE_WINDOW", "MONGODB_DB_NAME"} {
			if ref == nil {
				break
			}
			if env[k] != ref[k] {
				p.addf("%s: %s=%q differs from api's %q (every process must agree)", name, k, env[k], ref[k])
			}
		}
		if ref == nil {
			ref = env
		}
		got := strings.Split(env["NATS_URL"], ",")
		if !slices.Equal(got, natsURLs) {
			p.addf("%s: NATS_URL=%q, want the three nodes %s", name, env["NATS_URL"], strings.Join(natsURLs, ","))
		}
		if env["STREAM_REPLICAS"] != "3" {
			p.addf("%s: STREAM_REPLICAS=%q, want 3 on a 3-node cluster", name, env["STREAM_REPLICAS"])
		}
		if d, err := time.ParseDuration(env["STREAM_DUPLICATE_WINDOW"]); err != nil || d < time.Minute {
			p.addf("%s: STREAM_DUPLICATE_WINDOW=%q, want a duration of at least 1m", name, env["STREAM_DUPLICATE_WINDOW"])
		}
		if u, err := url.Parse(env["MONGODB_URL"]); err != nil || u.Scheme != "mongodb" {
			p.addf("%s: MONGODB_URL=%q is not a mongodb:// URL", name, env["MONGODB_URL"])
		} else {
			q := u.Query()
			if q.Get("replicaSet") != "rs0" {
				p.addf("%s: MONGODB_URL must name replicaSet=rs0", name)
			}
			if q.Get("w") != "majority" {
				p.addf("%s: MONGODB_URL must ask for w=majority", name)
			}
			if n := len(strings.Split(u.Host, ",")); n != 3 {
				p.addf("%s: MONGODB_URL lists %d hosts, want the 3 members", name, n)
			}
		}
		if name == "crmctl" {
			continue
		}
		for _, dep := range append(slices.Clone(natsNames()), "mongo-init") {
			d, ok := s.DependsOn[dep]
			want := types.ServiceConditionHealthy
			if dep == "mongo-init" {
				want = types.ServiceConditionCompletedSuccessfully
			}
			if !ok || d.Condition != want {
				p.addf("%s: must depend on %s with condition %s", name, dep, want)
			}
		}
		if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) < 30*time.Second {
			p.addf("%s: stop_grace_period must be at least 30s (the API drains for up to 25 s)", name)
		}
	}
	if s, ok := project.Services["api"]; ok {
		if s.Deploy == nil || s.Deploy.Replicas == nil || *s.Deploy.Replicas < 2 {
			p.addf("api: want deploy.replicas >= 2")
		}
		env := environment(s)
		if v, err := strconv.ParseFloat(env["RATE_LIMIT_RPS"], 64); err != nil || v <= 0 {
			p.addf("api: RATE_LIMIT_RPS=%q, want a positive rate", env["RATE_LIMIT_RPS"])
		}
		if len(s.Ports) > 0 {
			p.addf("api: publishes ports; only the load balancer should")
		}
	}
	if s, ok := project.Services["projector"]; ok && !slices.Equal(s.Entrypoint, types.ShellCommand{"/usr/local/bin/projector"}) {
		p.addf("projector: entrypoint must be /usr/local/bin/projector, got %q", s.Entrypoint)
	}

	// The load balancer: the only published application port, proxying to api:8080.
	if s, ok := svc("lb"); ok {
		if !slices.ContainsFunc(s.Ports, func(pc types.ServicePortConfig) bool { return pc.Target == 8080 }) {
			p.addf("lb: container port 8080 is not published")
		}
		conf := mountSource(s, "/etc/nginx/nginx.conf")
		if conf == "" {
			p.addf("lb: nginx.conf is not mounted")
		} else if b, err := os.ReadFile(conf); err != nil {
			p.addf("lb: %v", err)
		} else if !strings.Contains(string(b), "server api:8080") {
			p.addf("lb: %s does not proxy to api:8080", conf)
		}
		if s.HealthCheck == nil || s.HealthCheck.Disable {
			p.addf("lb: no healthcheck (it is the one probing /readyz)")
		}
	}
	return p, nil
}

func natsNames() []string { return []string{"nats-1", "nats-2", "nats-3"} }

// environment returns a service's resolved environment (env_file entries
// that do not exist are simply absent).
func environment(s types.ServiceConfig) map[string]string {
	out := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

// mountSource returns the host path bind-mounted at target, or "".
func mountSource(s types.ServiceConfig, target string) string {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == target {
			return v.Source
		}
	}
	return ""
}

func hasNamedVolume(s types.ServiceConfig, target string) bool {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Target == target && v.Source != "" {
			return true
		}
	}
	return false
}

// Command deploycheck validates the deployment files of crm statically,
// offline and without a container engine or a Kubernetes cluster:
//
//	deploycheck compose FILE   load FILE like `docker compose config` does
//	                           (compose-go: schema, interpolation, consistency)
//	                           and check the cluster wiring
//	deploycheck nats FILE      parse a nats-server configuration with the
//	                           server's configuration parser; require
//	                           JetStream, sync always and a 3-route cluster
//	                           (the server's semantic checks: nats-server -t)
//	deploycheck dockerfile FILE CONTEXT
//	                           parse FILE with BuildKit's parser and linter
//	                           (warnings are errors), check its .dockerignore
//	                           and the image contract (static, non-root, the
//	                           three binaries, cache mounts, api entrypoint)
//	deploycheck k8s DIR        `kustomize build DIR` (kustomize's library),
//	                           strictly decode every object into the
//	                           k8s.io/api types (unknown or duplicate fields
//	                           are errors) and check references and policies
//
// It lives in its own module (deploy/tools) so the service's go.mod does not
// carry its dependencies. Run it through deploy/validate.sh.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: deploycheck compose FILE | nats FILE | dockerfile FILE CONTEXT | k8s DIR [-o OUT]")
		os.Exit(2)
	}
	var (
		errs []string
		err  error
	)
	switch os.Args[1] {
	case "compose":
		errs, err = checkCompose(context.Background(), os.Args[2])
	case "nats":
		errs, err = checkNATS(os.Args[2])
	case "dockerfile":
		if len(os.Args) != 4 {
			fmt.Fprintln(os.Stderr, "usage: deploycheck dockerfile FILE CONTEXT")
			os.Exit(2)
		}
		errs, err = checkDockerfile(os.Args[2], os.Args[3])
	case "k8s":
		out := ""
		if len(os.Args) == 5 && os.Args[3] == "-o" {
			out = os.Args[4]
		}
		errs, err = checkK8s(os.Args[2], out)
	default:
		fmt.Fprintf(os.Stderr, "deploycheck: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "deploycheck %s %s: %s\n", os.Args[1], os.Args[2], strings.TrimSpace(err.Error()))
		os.Exit(1)
	}
	if len(errs) > 0 {
		fmt.Fprintf(os.Stderr, "deploycheck %s %s: %d problem(s):\n  - %s\n", os.Args[1], os.Args[2], len(errs), strings.Join(errs, "\n  - "))
		os.Exit(1)
	}
}

// problems collects findings.
type problems []string

func (p *problems) addf(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/dockerignore"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
)

// checkDockerfile parses the Dockerfile with BuildKit's own parser and
// linter (the rules `docker build --check` runs at parse time; every
// warning is an error here), checks its <Dockerfile>.dockerignore against
// the files the build needs, and checks the image's contract: static
// non-root final stage, the three binaries, cache mounts, api entrypoint.
func checkDockerfile(path, contextDir string) ([]string, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p problems
	res, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		return nil, err
	}
	for _, w := range res.Warnings {
		p.addf("parser: %s", w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		p.addf("line %d: %s: %s", line, rule, msg)
	}})
	stages, _, err := instructions.Parse(res.AST, lint)
	if err != nil {
		return nil, err
	}
	if len(stages) < 2 {
		return append(p, "want a multi-stage build (builder + final)"), nil
	}
	names := map[string]bool{}
	for _, s := range stages {
		names[strings.ToLower(s.Name)] = true
	}

	// Builder: module and build caches mounted, static trimmed build of the
	// three commands, which must exist in the build context.
	var built []string
	for _, s := range stages[:len(stages)-1] {
		for _, c := range s.Commands {
			run, ok := c.(*instructions.RunCommand)
			if !ok {
				continue
			}
			code := run.String()
			if !strings.Contains(code, "go build") {
				continue
			}
			for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w"`} {
				if !strings.Contains(code, want) && !(want == "CGO_ENABLED=0" && stageEnv(s, "CGO_ENABLED") == "0") {
					p.addf("stage %s: go build without %s", s.Name, want)
				}
			}
			for _, target := range []string{"/go/pkg/mod", "/root/.cache/go-build"} {
				if !strings.Contains(code, "type=cache,target="+target) {
					p.addf("stage %s: go build without a cache mount on %s", s.Name, target)
				}
			}
			built = append(built, regexp.MustCompile(`\./cmd/[A-Za-z0-9_-]+`).FindAllString(code, -1)...)
		}
	}
	for _, want := range []string{"./cmd/api", "./cmd/projector", "./cmd/crmctl"} {
		if !slices.Contains(built, want) {
			p.addf("the builder does not build %s", want)
		}
	}
	for _, pkg := range built {
		if st, err := os.Stat(filepath.Join(contextDir, pkg)); err != nil || !st.IsDir() {
			p.addf("%s is built but does not exist in the build context %s", pkg, contextDir)
		}
	}

	// Final stage: distroless static (or scratch), non-root, api entrypoint.
	final := stages[len(stages)-1]
	if !strings.HasPrefix(final.BaseName, "gcr.io/distroless/static") && final.BaseName != "scratch" {
		p.addf("final stage FROM %s: want gcr.io/distroless/static…:nonroot or scratch", final.BaseName)
	}
	var user, entrypoint string
	var exposed []string
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			if c.PrependShell {
				p.addf("final stage: ENTRYPOINT in shell form needs a shell the image does not have")
			}
			entrypoint = strings.Join(c.CmdLine, " ")
		case *instructions.ExposeCommand:
			exposed = append(exposed, c.Ports...)
		case *instructions.HealthCheckCommand:
			p.addf("final stage: HEALTHCHECK cannot run in a distroless image (no shell, no HTTP client)")
		case *instructions.CopyCommand:
			if c.From != "" && !names[strings.ToLower(c.From)] {
				p.addf("final stage: COPY --from=%s names no stage", c.From)
			}
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "0" || u == "root" {
		p.addf("final stage runs as root (USER %q)", user)
	}
	if entrypoint != "/usr/local/bin/api" {
		p.addf("final stage ENTRYPOINT is %q, want /usr/local/bin/api", entrypoint)
	}
	if !slices.Contains(exposed, "8080") {
		p.addf("final stage does not EXPOSE 8080")
	}

	// The Dockerfile-specific ignore file must keep what the build needs.
	if f, err := os.Open(path + ".dockerignore"); err == nil {
		patterns, err := dockerignore.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		pm, err := patternmatcher.New(patterns)
		if err != nil {
			return nil, fmt.Errorf("%s.dockerignore: %w", path, err)
		}
		need := append([]string{"go.mod", "go.sum", "internal"}, built...)
		for _, n := range need {
			n = strings.TrimPrefix(n, "./")
			if excluded, _ := pm.MatchesOrParentMatches(n); excluded {
				p.addf("%s.dockerignore excludes %s, which the build needs", filepath.Base(path), n)
			}
		}
	}
	return p, nil
}

// stageEnv returns the last value an ENV of the stage gives name.
func stageEnv(s instructions.Stage, name string) string {
	v := ""
	for _, c := range s.Commands {
		if e, ok := c.(*instructions.EnvCommand); ok {
			for _, kv := range e.Env {
				if kv.Key == name {
					v = kv.Value
				}
			}
		}
	}
	return v
}

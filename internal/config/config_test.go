package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadAPI(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil || !c.Embedded() || c.HTTPAddr != ":8080" || c.ReadyMaxStall != 15*time.Second {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	for name, vars := range map[string]map[string]string{
		"no secret with external NATS": {"NATS_URL": "nats://x:4222"},
		"short secret":                 {"NATS_URL": "nats://x:4222", "SECRET_KEY": "short"},
		"bad stall":                    {"READY_MAX_STALL": "soon"},
		"bad HTTP address":             {"HTTP_ADDR": "8080"},
	} {
		if _, err := Load(env(vars)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestLoadProjector: the projector reads only its variables (others, even
// invalid, are ignored), and needs NATS_URL.
func TestLoadProjector(t *testing.T) {
	c, err := LoadProjector(env(map[string]string{"NATS_URL": "nats://x:4222", "HTTP_ADDR": "garbage", "SECRET_KEY": "",
		"NATS_PORT": "not a port", "LOG_LEVEL": "debug", "METRICS_ADDR": "127.0.0.1:9999"}))
	if err != nil || c.LogLevel != "debug" || c.MetricsAddr != "127.0.0.1:9999" || c.HTTPAddr != ":8080" {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := LoadProjector(env(nil)); err == nil || !strings.Contains(err.Error(), "NATS_URL") {
		t.Errorf("without NATS_URL: %v", err)
	}
	if _, err := LoadProjector(env(map[string]string{"NATS_URL": "nats://x:4222", "METRICS_ADDR": "9091"})); err == nil {
		t.Error("a bad METRICS_ADDR accepted")
	}
}

func TestUsageListsEachBinarysVariables(t *testing.T) {
	api, proj := Usage(API, "api", "x"), Usage(Projector, "projector", "x")
	for _, v := range Vars {
		if v.For == 0 {
			t.Errorf("%s is read by no binary", v.Name)
		}
		if got, want := strings.Contains(api, "  "+v.Name+" "), v.For&API != 0; got != want {
			t.Errorf("api --help lists %s: %v, want %v", v.Name, got, want)
		}
		if got, want := strings.Contains(proj, "  "+v.Name+" "), v.For&Projector != 0; got != want {
			t.Errorf("projector --help lists %s: %v, want %v", v.Name, got, want)
		}
	}
}

// TestReadmeListsEveryVariable: the README's configuration table names every
// variable, and no other.
func TestReadmeListsEveryVariable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, "## Configuration")
	if i < 0 {
		t.Fatal("README.md has no Configuration section")
	}
	table := readme[i:]
	if j := strings.Index(table[3:], "\n## "); j >= 0 {
		table = table[:j+3]
	}
	known := map[string]bool{}
	for _, v := range Vars {
		known[v.Name] = true
		if !strings.Contains(table, "`"+v.Name+"`") {
			t.Errorf("README's configuration table lacks %s", v.Name)
		}
	}
	for _, m := range regexp.MustCompile("`([A-Z][A-Z_]+)`").FindAllStringSubmatch(table, -1) {
		if !known[m[1]] {
			t.Errorf("README's configuration table names %s, which no binary reads", m[1])
		}
	}
}

package natsauth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	u, p, err := LoadOrCreate(dir)
	if err != nil || u != EmbeddedUser || len(p) < 32 {
		t.Fatalf("LoadOrCreate: %q %q %v", u, p, err)
	}
	fi, err := os.Stat(filepath.Join(dir, EmbeddedFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file: %v %v", fi, err)
	}
	if u2, p2, err := LoadOrCreate(dir); err != nil || u2 != u || p2 != p {
		t.Fatalf("second start generated new credentials: %q %q %v", u2, p2, err)
	}
	if err := os.WriteFile(filepath.Join(dir, EmbeddedFile), []byte("crm:short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreate(dir); err == nil || !strings.Contains(err.Error(), EmbeddedFile) {
		t.Fatalf("a bad file: %v", err)
	}
	if got := WithUser("nats://127.0.0.1:4222", "crm", "p@ss"); got != "nats://crm:p%40ss@127.0.0.1:4222" {
		t.Fatalf("WithUser: %s", got)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{}, ""},
		{Config{User: "a", Password: "b"}, ""},
		{Config{User: "a"}, "NATS_USER and NATS_PASSWORD"},
		{Config{User: "a", Password: "b", Token: "t"}, "at most one"},
		{Config{Cert: "/nonexistent.pem"}, "NATS_CERT and NATS_KEY"},
		{Config{CA: "/nonexistent-ca.pem"}, "NATS_CA"},
		{Config{Creds: "/nonexistent.creds"}, "NATS_CREDS"},
	} {
		errs := strings.Join(tc.c.Validate(), "; ")
		if tc.want == "" && errs != "" || tc.want != "" && !strings.Contains(errs, tc.want) {
			t.Errorf("%+v: %q, want %q", tc.c, errs, tc.want)
		}
	}
}

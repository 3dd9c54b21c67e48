// Package natsauth holds how the crm binaries authenticate to NATS: the
// credentials the embedded server generates in DATA_DIR, and the standard
// client options of a distributed deployment (a creds file or NKEY seed,
// user and password, a token, TLS with a CA and client certificates).
package natsauth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"
)

// EmbeddedFile is the file in DATA_DIR holding the embedded server's
// credentials, "user:password" (mode 0600, like secret.key).
const EmbeddedFile = "nats.credentials"

// EmbeddedUser is the embedded server's one user.
const EmbeddedUser = "crm"

// LoadOrCreate returns the embedded credentials in dataDir, generating
// them on first use.
func LoadOrCreate(dataDir string) (user, password string, err error) {
	user, password, err = Load(dataDir)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return user, password, err
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", "", err
	}
	user, password = EmbeddedUser, hex.EncodeToString(raw)
	path := filepath.Join(dataDir, EmbeddedFile)
	if err := os.WriteFile(path, []byte(user+":"+password+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("write %s: %w", path, err)
	}
	return user, password, nil
}

// Load reads the embedded credentials in dataDir (an error wrapping
// os.ErrNotExist when there are none).
func Load(dataDir string) (user, password string, err error) {
	path := filepath.Join(dataDir, EmbeddedFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	user, password, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
	if !ok || user == "" || len(password) < 16 {
		return "", "", fmt.Errorf("%s is not user:password (16+ characters); delete it to generate new credentials", path)
	}
	return user, password, nil
}

// WithUser returns the nats:// URL u with user and password in it.
func WithUser(u, user, password string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	p.User = url.UserPassword(user, password)
	return p.String()
}

// Config is a client's NATS authentication, from the environment (see
// FromEnv): at most one of Creds, User (with Password) and Token, and
// optionally TLS.
type Config struct {
	Creds    string // NATS_CREDS: a .creds file (JWT + NKEY seed) or an NKEY seed file
	User     string // NATS_USER
	Password string // NATS_PASSWORD
	Token    string // NATS_TOKEN
	CA       string // NATS_CA: CA certificate(s) to verify the server (PEM)
	Cert     string // NATS_CERT: client certificate (PEM), with NATS_KEY
	Key      string // NATS_KEY
}

// Vars are the environment variables FromEnv reads.
var Vars = []string{"NATS_CREDS", "NATS_USER", "NATS_PASSWORD", "NATS_TOKEN", "NATS_CA", "NATS_CERT", "NATS_KEY"}

// FromEnv reads Config from the environment.
func FromEnv(getenv func(string) string) Config {
	g := func(k string) string { return strings.TrimSpace(getenv(k)) }
	return Config{Creds: g("NATS_CREDS"), User: g("NATS_USER"), Password: getenv("NATS_PASSWORD"), Token: getenv("NATS_TOKEN"),
		CA: g("NATS_CA"), Cert: g("NATS_CERT"), Key: g("NATS_KEY")}
}

// IsZero reports whether c sets nothing.
func (c Config) IsZero() bool { return c == Config{} }

// Validate returns the problems of c, each naming its variable.
func (c Config) Validate() []string {
	var errs []string
	n := 0
	for _, set := range []bool{c.Creds != "", c.User != "" || c.Password != "", c.Token != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		errs = append(errs, "NATS_CREDS, NATS_USER/NATS_PASSWORD and NATS_TOKEN: set at most one")
	}
	if (c.User == "") != (c.Password == "") {
		errs = append(errs, "NATS_USER and NATS_PASSWORD: set both or neither")
	}
	if (c.Cert == "") != (c.Key == "") {
		errs = append(errs, "NATS_CERT and NATS_KEY: set both or neither")
	}
	for _, f := range []struct{ name, path string }{{"NATS_CREDS", c.Creds}, {"NATS_CA", c.CA}, {"NATS_CERT", c.Cert}, {"NATS_KEY", c.Key}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, f.name+": "+err.Error())
		}
	}
	return errs
}

// Options returns the nats.Connect options of c.
func (c Config) Options() ([]nats.Option, error) {
	var o []nats.Option
	switch {
	case c.Creds != "":
		b, err := os.ReadFile(c.Creds)
		if err != nil {
			return nil, fmt.Errorf("NATS_CREDS: %w", err)
		}
		if strings.Contains(string(b), "BEGIN NATS USER JWT") {
			o = append(o, nats.UserCredentials(c.Creds))
		} else {
			opt, err := nats.NkeyOptionFromSeed(c.Creds)
			if err != nil {
				return nil, fmt.Errorf("NATS_CREDS: neither a .creds file nor an NKEY seed: %w", err)
			}
			o = append(o, opt)
		}
	case c.User != "":
		o = append(o, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		o = append(o, nats.Token(c.Token))
	}
	if c.CA != "" {
		o = append(o, nats.RootCAs(c.CA))
	}
	if c.Cert != "" {
		o = append(o, nats.ClientCert(c.Cert, c.Key))
	}
	return o, nil
}

// ClientOptions returns a tool's authentication to the NATS at urls: none
// when the (first) URL carries credentials, else env's when it sets any,
// else the embedded service's credentials in dataDir when they are there
// (the operator's tools find them as they find secret.key).
func ClientOptions(urls string, env Config, dataDir string) ([]nats.Option, error) {
	if u, err := url.Parse(strings.Split(urls, ",")[0]); err == nil && u.User != nil {
		return nil, nil
	}
	if !env.IsZero() {
		return env.Options()
	}
	user, password, err := Load(dataDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return []nats.Option{nats.UserInfo(user, password)}, nil
}

// Package config reads the service's configuration from the environment once,
// applies defaults and validates it with one clear message.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"crm/internal/auth"
	"crm/internal/natsauth"
)

// Binary names a program that reads the configuration.
type Binary uint8

// The binaries (a bit set: a variable may be read by several).
const (
	API Binary = 1 << iota
	Projector
	both = API | Projector
)

// Var documents one environment variable.
type Var struct {
	Name, Default, Help string
	For                 Binary // the binaries that read it
}

// Vars lists every environment variable the binaries read.
var Vars = []Var{
	{"HTTP_ADDR", ":8080", "address the REST API listens on", API},
	{"DATA_DIR", "./data", "embedded mode: JetStream store, SQLite read model and generated secret (projector: the SQLite read model without MONGODB_URL)", both},
	{"IMPORT_DIR", "", "import jobs' uploads, state and rejected rows (default DATA_DIR/imports); give each API replica its own", API},
	{"NATS_URL", "", "external NATS server(s), comma-separated; empty = start an embedded nats-server (required by the projector)", both},
	{"NATS_HOST", "127.0.0.1", "embedded mode: interface the embedded nats-server listens on", API},
	{"NATS_PORT", "4222", "embedded mode: port of the embedded nats-server (-1 = any free port)", API},
	{"NATS_NO_SYNC", "false", "embedded mode: do not fsync every JetStream write (benchmarks only; unsafe)", API},
	{"NATS_CREDS", "", "NATS credentials: a .creds file (user JWT + NKEY seed) or an NKEY seed file", both},
	{"NATS_USER", "", "NATS user (with NATS_PASSWORD)", both},
	{"NATS_PASSWORD", "", "NATS password of NATS_USER", both},
	{"NATS_TOKEN", "", "NATS authentication token", both},
	{"NATS_CA", "", "CA certificate(s) (PEM) to verify the NATS servers' TLS certificates", both},
	{"NATS_CERT", "", "client certificate (PEM) for NATS TLS, with NATS_KEY", both},
	{"NATS_KEY", "", "private key (PEM) of NATS_CERT", both},
	{"STREAM_REPLICAS", "1", "replicas of the JetStream streams (3 on a cluster)", API},
	{"STREAM_DUPLICATE_WINDOW", "2m", "JetStream duplicate window for idempotent publishing", API},
	{"MONGODB_URL", "", "MongoDB read model (production); empty = embedded SQLite under DATA_DIR", both},
	{"MONGODB_DB_NAME", "a64core", "MongoDB database of the customers collection", both},
	{"SECRET_KEY", "", "HS256 key of the bearer tokens; required (32+ bytes) unless embedded, where one is generated in DATA_DIR", API},
	{"JWT_ISSUER", "", "when set, tokens must carry this iss", API},
	{"JWT_AUDIENCE", "", "when set, tokens must carry this aud", API},
	{"JWT_MAX_TTL", "", "when set (e.g. 24h), a token whose exp - iat (exp - now without iat) exceeds it is refused", API},
	{"JWT_PERMISSIONS_CLAIM", "true", "honour a token's explicit permissions claim, which replaces its roles' permissions; false = roles only", API},
	{"ROLE_PERMISSIONS", "", `JSON role→permissions map, e.g. {"admin":["crm.view","crm.create"]}; empty = the seed's defaults`, API},
	{"CORS_ORIGINS", "", "comma-separated origins allowed by CORS", API},
	{"READ_YOUR_WRITES_TIMEOUT", "3s", "how long a command response waits for the read model (0 = do not wait)", API},
	{"RATE_LIMIT_RPS", "", "requests per second per authenticated user (0 = off); default off embedded, 50 with an external NATS", API},
	{"RATE_LIMIT_BURST", "", "burst of the rate limit (default 2 x RATE_LIMIT_RPS)", API},
	{"READY_MAX_LAG", "10000", "/readyz fails while the read model is more than this many events behind the stream", both},
	{"READY_MAX_STALL", "15s", "/readyz fails when the read model's checkpoint has not moved for this long while the stream is ahead of it (no projector running?); distributed mode, without an in-process projector", API},
	{"WEBHOOK_DELIVERY", "true", "this API process delivers webhooks (each subscription is delivered by one replica at a time, by lease); false = serve the webhook API only", API},
	{"WEBHOOK_ALLOW_HTTP", "false", "let webhook subscriptions use http:// URLs (development only; production endpoints are https)", API},
	{"WEBHOOK_ALLOW_NETS", "", "comma-separated networks webhooks may call although internal (loopback, private, link-local), e.g. 127.0.0.1/32 for a local receiver", API},
	{"WEBHOOK_TIMEOUT", "10s", "time limit of one webhook delivery attempt", API},
	{"WEBHOOK_RETRY_FOR", "24h", "how long a webhook event is retried (exponential backoff, 1s doubling to 10m; at least 24h) before its subscription is disabled", API},
	{"METRICS_ADDR", ":9091", "operations listener: /metrics, /healthz and the detailed /readyz (keep it off the public network); API: opened only with NATS_URL unless set (embedded mode serves /metrics on the API's own port)", both},
	{"LOG_LEVEL", "info", "debug, info, warn or error", both},
	{"DEBUG_ADDR", "", "when set, serve Go pprof profiles on this address (e.g. 127.0.0.1:6060; never expose it)", both},
}

// Config is the validated configuration.
type Config struct {
	HTTPAddr string
	DataDir  string
	// ImportDir holds the import jobs' uploads and state (IMPORT_DIR,
	// default DATA_DIR/imports; "" = imports off).
	ImportDir             string
	NATSURL               string
	NATSHost              string
	NATSPort              int
	NATSNoSync            bool
	StreamReplicas        int
	DuplicateWindow       time.Duration
	MongoURL              string
	MongoDB               string
	SecretKey             string
	JWTIssuer             string
	JWTAudience           string
	JWTMaxTTL             time.Duration // 0: no limit
	JWTPermissionsClaim   bool
	Roles                 auth.RolePermissions
	CORSOrigins           []string
	ReadYourWritesTimeout time.Duration
	ReadyMaxLag           uint64
	ReadyMaxStall         time.Duration
	MetricsAddr           string
	// NATSAuth is how a client authenticates to an external NATS (the
	// embedded server's credentials are generated in DATA_DIR instead).
	NATSAuth       natsauth.Config
	RateLimitRPS   float64
	RateLimitBurst int
	LogLevel       string
	DebugAddr      string
	// Webhooks: WEBHOOK_*.
	WebhookDelivery  bool
	WebhookAllowHTTP bool
	WebhookAllowNets []netip.Prefix
	WebhookTimeout   time.Duration
	WebhookRetryFor  time.Duration
}

// Embedded reports whether the service runs its own nats-server.
func (c Config) Embedded() bool { return c.NATSURL == "" }

// MinSecretBytes is the shortest SECRET_KEY accepted outside embedded mode.
const MinSecretBytes = 32

// Load reads the API's configuration through getenv and validates it. All
// problems are reported in one error.
func Load(getenv func(string) string) (Config, error) { return load(API, getenv) }

// LoadProjector reads the projector's configuration (its variables only;
// NATS_URL is required).
func LoadProjector(getenv func(string) string) (Config, error) { return load(Projector, getenv) }

func load(b Binary, getenv func(string) string) (Config, error) {
	isAPI := b&API != 0
	// get returns a variable's value, or its default; a variable the
	// binary does not read is always its default (and so never invalid).
	get := func(name string) string {
		for _, v := range Vars {
			if v.Name != name {
				continue
			}
			if val := strings.TrimSpace(getenv(name)); val != "" && v.For&b != 0 {
				return val
			}
			return v.Default
		}
		panic("config: unknown variable " + name)
	}
	var errs []string
	bad := func(name, msg string) { errs = append(errs, name+": "+msg) }

	c := Config{
		HTTPAddr:    get("HTTP_ADDR"),
		DataDir:     get("DATA_DIR"),
		ImportDir:   get("IMPORT_DIR"),
		NATSURL:     get("NATS_URL"),
		NATSHost:    get("NATS_HOST"),
		MongoURL:    get("MONGODB_URL"),
		MongoDB:     get("MONGODB_DB_NAME"),
		SecretKey:   get("SECRET_KEY"),
		JWTIssuer:   get("JWT_ISSUER"),
		JWTAudience: get("JWT_AUDIENCE"),
		LogLevel:    strings.ToLower(get("LOG_LEVEL")),
		DebugAddr:   get("DEBUG_ADDR"),
		MetricsAddr: get("METRICS_ADDR"),
	}
	if isAPI {
		// The key is taken as given: its bytes sign the tokens.
		c.SecretKey = getenv("SECRET_KEY")
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		bad("HTTP_ADDR", "must be host:port, e.g. :8080")
	}
	c.NATSAuth = natsauth.FromEnv(get)
	for _, e := range c.NATSAuth.Validate() {
		errs = append(errs, e)
	}
	if isAPI && c.NATSURL == "" && strings.TrimSpace(getenv("METRICS_ADDR")) == "" {
		// Embedded (zero setup): no second listener unless asked for.
		c.MetricsAddr = ""
	}
	if _, _, err := net.SplitHostPort(c.MetricsAddr); c.MetricsAddr != "" && err != nil {
		bad("METRICS_ADDR", "must be host:port, e.g. :9091")
	}
	if c.DebugAddr != "" {
		if _, _, err := net.SplitHostPort(c.DebugAddr); err != nil {
			bad("DEBUG_ADDR", "must be host:port, e.g. 127.0.0.1:6060")
		}
	}
	var err error
	if c.NATSPort, err = strconv.Atoi(get("NATS_PORT")); err != nil || c.NATSPort < -1 || c.NATSPort > 65535 {
		bad("NATS_PORT", "must be a port number or -1")
	}
	if c.NATSNoSync, err = strconv.ParseBool(get("NATS_NO_SYNC")); err != nil {
		bad("NATS_NO_SYNC", "must be true or false")
	}
	if c.StreamReplicas, err = strconv.Atoi(get("STREAM_REPLICAS")); err != nil || c.StreamReplicas < 1 || c.StreamReplicas > 5 {
		bad("STREAM_REPLICAS", "must be 1 to 5")
	}
	if c.DuplicateWindow, err = time.ParseDuration(get("STREAM_DUPLICATE_WINDOW")); err != nil || c.DuplicateWindow < time.Second {
		bad("STREAM_DUPLICATE_WINDOW", "must be a duration of at least 1s, e.g. 2m")
	}
	if v := get("JWT_MAX_TTL"); v != "" {
		if c.JWTMaxTTL, err = time.ParseDuration(v); err != nil || c.JWTMaxTTL <= 0 {
			bad("JWT_MAX_TTL", "must be a positive duration such as 24h")
		}
	}
	if c.JWTPermissionsClaim, err = strconv.ParseBool(get("JWT_PERMISSIONS_CLAIM")); err != nil {
		bad("JWT_PERMISSIONS_CLAIM", "must be true or false")
	}
	if c.ReadYourWritesTimeout, err = time.ParseDuration(get("READ_YOUR_WRITES_TIMEOUT")); err != nil || c.ReadYourWritesTimeout < 0 {
		bad("READ_YOUR_WRITES_TIMEOUT", "must be a duration such as 3s, or 0")
	}
	if c.ReadYourWritesTimeout == 0 {
		c.ReadYourWritesTimeout = -1 // 0 means "do not wait"
	}
	if v := get("RATE_LIMIT_RPS"); v != "" {
		if c.RateLimitRPS, err = strconv.ParseFloat(v, 64); err != nil || c.RateLimitRPS < 0 {
			bad("RATE_LIMIT_RPS", "must be a number of requests per second, 0 = off")
		}
	} else if !c.Embedded() {
		c.RateLimitRPS = 50
	}
	if v := get("RATE_LIMIT_BURST"); v != "" {
		if c.RateLimitBurst, err = strconv.Atoi(v); err != nil || c.RateLimitBurst < 1 {
			bad("RATE_LIMIT_BURST", "must be a positive integer")
		}
	} else {
		c.RateLimitBurst = int(2 * c.RateLimitRPS)
	}
	if c.ReadyMaxLag, err = strconv.ParseUint(get("READY_MAX_LAG"), 10, 64); err != nil {
		bad("READY_MAX_LAG", "must be a number of events")
	}
	if c.ReadyMaxStall, err = time.ParseDuration(get("READY_MAX_STALL")); err != nil || c.ReadyMaxStall < time.Second {
		bad("READY_MAX_STALL", "must be a duration of at least 1s, e.g. 15s")
	}
	if c.WebhookDelivery, err = strconv.ParseBool(get("WEBHOOK_DELIVERY")); err != nil {
		bad("WEBHOOK_DELIVERY", "must be true or false")
	}
	if c.WebhookAllowHTTP, err = strconv.ParseBool(get("WEBHOOK_ALLOW_HTTP")); err != nil {
		bad("WEBHOOK_ALLOW_HTTP", "must be true or false")
	}
	if c.WebhookAllowNets, err = parseNets(get("WEBHOOK_ALLOW_NETS")); err != nil {
		bad("WEBHOOK_ALLOW_NETS", err.Error())
	}
	if c.WebhookTimeout, err = time.ParseDuration(get("WEBHOOK_TIMEOUT")); err != nil || c.WebhookTimeout < 100*time.Millisecond || c.WebhookTimeout > time.Minute {
		bad("WEBHOOK_TIMEOUT", "must be a duration from 100ms to 1m, e.g. 10s")
	}
	if c.WebhookRetryFor, err = time.ParseDuration(get("WEBHOOK_RETRY_FOR")); err != nil || c.WebhookRetryFor < 24*time.Hour {
		bad("WEBHOOK_RETRY_FOR", "must be a duration of at least 24h (webhook receivers are promised a day of retries), e.g. 72h")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("LOG_LEVEL", "must be debug, info, warn or error")
	}
	if s := get("ROLE_PERMISSIONS"); s != "" {
		if c.Roles, err = auth.ParseRoles(s); err != nil {
			bad("ROLE_PERMISSIONS", err.Error())
		}
	}
	if c.ImportDir == "" && c.DataDir != "" {
		c.ImportDir = filepath.Join(c.DataDir, "imports")
	}
	for _, o := range strings.Split(get("CORS_ORIGINS"), ",") {
		if o = strings.TrimSpace(o); o != "" {
			c.CORSOrigins = append(c.CORSOrigins, o)
		}
	}
	switch {
	case !isAPI && c.Embedded():
		bad("NATS_URL", "is required (in the embedded default the API runs the projector itself)")
	case !isAPI && c.MongoURL == "" && c.DataDir == "":
		bad("DATA_DIR", "is required without MONGODB_URL")
	case c.Embedded():
		if c.DataDir == "" {
			bad("DATA_DIR", "is required in embedded mode")
		}
	case isAPI && c.SecretKey == "":
		bad("SECRET_KEY", "is required with an external NATS_URL")
	}
	if isAPI && c.SecretKey != "" && len(c.SecretKey) < MinSecretBytes && !c.Embedded() {
		bad("SECRET_KEY", fmt.Sprintf("must be at least %d bytes", MinSecretBytes))
	}
	if c.MongoURL != "" && !strings.HasPrefix(c.MongoURL, "mongodb://") && !strings.HasPrefix(c.MongoURL, "mongodb+srv://") {
		bad("MONGODB_URL", "must start with mongodb:// or mongodb+srv://")
	}
	if len(errs) > 0 {
		return c, errors.New("invalid configuration: " + strings.Join(errs, "; "))
	}
	return c, nil
}

// Usage returns the --help text of a binary: the variables it reads, with
// their defaults.
func Usage(b Binary, binary, summary string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s — %s\n\nConfiguration (environment variables):\n", binary, summary)
	for _, v := range Vars {
		if v.For&b == 0 {
			continue
		}
		def := v.Default
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(&sb, "  %-26s default %-10s %s\n", v.Name, def, v.Help)
	}
	return sb.String()
}

// parseNets parses a comma-separated list of CIDR prefixes or addresses.
func parseNets(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			ip, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not an address or a CIDR prefix such as 127.0.0.1/32", f)
			}
			out = append(out, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
			continue
		}
		pfx, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR prefix such as 10.0.0.0/8", f)
		}
		out = append(out, pfx.Masked())
	}
	return out, nil
}

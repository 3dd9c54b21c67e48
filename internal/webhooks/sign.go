package webhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers (standardwebhooks.com).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
	// HeaderSequence carries the event's stream sequence: receivers order
	// and de-duplicate by it (with webhook-id).
	HeaderSequence = "X-Stream-Sequence"
	// HeaderSubscription names the subscription that made the request.
	HeaderSubscription = "X-Webhook-Subscription"
)

const secretPrefix = "whsec_"

// NewSecret returns a new signing secret: whsec_ and the base64 of 32
// random bytes, the format of the Standard Webhooks libraries.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return secretPrefix + base64.StdEncoding.EncodeToString(b)
}

// sign returns the v1 signature of one request: base64 of HMAC-SHA256
// over "id.timestamp.body" keyed with the secret's bytes.
func sign(secret, id string, ts time.Time, body []byte) string {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, secretPrefix))
	if err != nil || len(key) == 0 {
		key = []byte(secret) // not ours: sign with its bytes rather than not at all
	}
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	h.Write([]byte{'.'})
	h.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// SignatureHeader returns the webhook-signature value: one v1 signature
// per secret, space-separated (during a rotation's grace period a receiver
// that knows either secret verifies the request).
func SignatureHeader(secrets []string, id string, ts time.Time, body []byte) string {
	sigs := make([]string, len(secrets))
	for i, s := range secrets {
		sigs[i] = sign(s, id, ts, body)
	}
	return strings.Join(sigs, " ")
}

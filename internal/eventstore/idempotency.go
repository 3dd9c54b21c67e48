package eventstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"crm/internal/fault"
)

// Errors of Reserve.
var (
	// ErrIdempotencyMismatch (fault.Unprocessable): the idempotency key was
	// used before with a different request body.
	ErrIdempotencyMismatch = &fault.Error{Kind: fault.Unprocessable, Code: "idempotency-key-reused",
		Message: "this Idempotency-Key was used with a different request body"}
	// ErrIdempotencyBusy (fault.Conflict): the key's record kept appearing
	// and disappearing under concurrent requests (or its expiry); retry.
	ErrIdempotencyBusy = &fault.Error{Kind: fault.Conflict, RetryAfter: time.Second,
		Message: "a concurrent request with this Idempotency-Key is in progress; retry"}
)

// IdempotencyTTL is how long an idempotency key is remembered.
const IdempotencyTTL = 25 * time.Hour

// idempotencyBucket is the KV bucket of idempotency keys. (The no-limits
// rule is for the event stream; these records are meant to expire.)
const idempotencyBucket = "CRM_IDEMPOTENCY"

// idempotencyKV is what Reserve needs of the bucket (a jetstream.KeyValue).
type idempotencyKV interface {
	Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error)
	Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error)
}

type idempotencyRecord struct {
	RequestHash string    `json:"requestHash"`
	CustomerID  string    `json:"customerId"`
	CreatedAt   time.Time `json:"createdAt"`
}

func (s *Store) openIdempotency(ctx context.Context) error {
	kv, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      idempotencyBucket,
		Description: "crm Idempotency-Key records of POST /customers",
		History:     1,
		TTL:         IdempotencyTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    s.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("eventstore: idempotency bucket: %w", classify(err))
	}
	s.idem = kv
	return nil
}

// Reserve binds an idempotency key (scoped to the caller) to a customer id:
// the first call stores (requestHash, newID) and returns newID; later calls
// with the same request hash return the id stored first, across processes
// and restarts, for IdempotencyTTL. A different hash is
// ErrIdempotencyMismatch; a record that keeps vanishing between the create
// and the read (it expires, or is replaced under us) is ErrIdempotencyBusy.
func (s *Store) Reserve(ctx context.Context, scope, key, requestHash, newID string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	sum := sha256.Sum256([]byte(scope + "\x00" + key))
	k := hex.EncodeToString(sum[:])
	rec, _ := json.Marshal(idempotencyRecord{RequestHash: requestHash, CustomerID: newID, CreatedAt: time.Now().UTC()})
	for attempt := 0; attempt < 3; attempt++ {
		if _, err := s.idem.Create(ctx, k, rec); err == nil {
			return newID, nil
		} else if !errors.Is(err, jetstream.ErrKeyExists) {
			return "", classify(err)
		}
		e, err := s.idem.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // expired between the two calls
		}
		if err != nil {
			return "", classify(err)
		}
		var got idempotencyRecord
		if err := json.Unmarshal(e.Value(), &got); err != nil {
			return "", fmt.Errorf("%w: idempotency record %s: %v", errUnexpected, k, err)
		}
		if got.RequestHash != requestHash {
			return "", ErrIdempotencyMismatch
		}
		return got.CustomerID, nil
	}
	return "", ErrIdempotencyBusy
}

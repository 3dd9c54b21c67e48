package eventstore

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"crm/internal/fault"
)

// churningKV is a bucket whose key exists when created and is gone when
// read, every time: a record that expires or is replaced between the two
// calls of Reserve, forever.
type churningKV struct{ creates, gets int }

func (k *churningKV) Create(context.Context, string, []byte, ...jetstream.KVCreateOpt) (uint64, error) {
	k.creates++
	return 0, jetstream.ErrKeyExists
}

func (k *churningKV) Get(context.Context, string) (jetstream.KeyValueEntry, error) {
	k.gets++
	return nil, jetstream.ErrKeyNotFound
}

// TestReserveThatKeepsConflicting: a reservation that never settles is a
// retryable conflict (409 with Retry-After), never an unclassified error
// (which became a 500).
func TestReserveThatKeepsConflicting(t *testing.T) {
	kv := &churningKV{}
	s := &Store{cfg: Config{}.withDefaults(), idem: kv}
	_, err := s.Reserve(context.Background(), "user", "key", "hash", "11111111-1111-4111-8111-111111111111")
	if !errors.Is(err, ErrIdempotencyBusy) || fault.KindOf(err) != fault.Conflict {
		t.Fatalf("Reserve = %v (kind %s), want ErrIdempotencyBusy (conflict)", err, fault.KindOf(err))
	}
	if fe := fault.Of(err); fe.RetryAfter <= 0 {
		t.Errorf("no retry suggested: %+v", fe)
	}
	if kv.creates != 3 || kv.gets != 3 {
		t.Errorf("%d creates, %d gets; want 3 attempts", kv.creates, kv.gets)
	}
}

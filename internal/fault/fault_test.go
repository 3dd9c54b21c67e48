package fault

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestKindOf(t *testing.T) {
	sentinel := New(NotFound, "customer not found")
	tests := []struct {
		name string
		err  error
		want Kind
	}{
		{"sentinel", sentinel, NotFound},
		{"wrapped by fmt", fmt.Errorf("get: %w", sentinel), NotFound},
		{"outermost wins", Wrap(Conflict, "retries ran out", fmt.Errorf("%w: x", New(Unavailable, "down"))), Conflict},
		{"joined", errors.Join(errors.New("x"), sentinel), NotFound},
		{"deadline", fmt.Errorf("a: %w", context.DeadlineExceeded), Unavailable},
		{"cancelled", context.Canceled, Unavailable},
		{"plain", errors.New("boom"), Internal},
		{"invalid", InvalidField("name", "is required"), Invalid},
	}
	for _, tc := range tests {
		if got := KindOf(tc.err); got != tc.want {
			t.Errorf("%s: KindOf = %s, want %s", tc.name, got, tc.want)
		}
	}
	if Is(nil, Internal) {
		t.Error("nil is of no kind")
	}
	if !errors.Is(fmt.Errorf("x: %w", sentinel), sentinel) {
		t.Error("a wrapped sentinel is not errors.Is the sentinel")
	}
}

func TestMessages(t *testing.T) {
	err := Wrap(Unavailable, "the event store is unavailable", errors.New("nats: timeout"))
	if err.Error() != "the event store is unavailable: nats: timeout" || Of(err).Message != "the event store is unavailable" {
		t.Errorf("Error() %q, Message %q", err.Error(), Of(err).Message)
	}
	inv := InvalidFields(FieldError{"email", "must be a valid email address"}, FieldError{"tags", "at most 50 tags"})
	if inv.Message != "invalid email: must be a valid email address (and 1 more)" || len(Fields(inv)) != 2 {
		t.Errorf("invalid: %q %v", inv.Message, Fields(inv))
	}
	for _, k := range Kinds() {
		if k.String() == "" || New(k, "").Error() == "" {
			t.Errorf("kind %d has no name", k)
		}
	}
}

// Command consumer is an example downstream service: with nothing but nats.go
// and the published event contract (docs/asyncapi.yaml), it keeps its own copy
// of every customer, contact and activity from the events alone. It uses a durable JetStream
// consumer, writes its copy to a JSON file before acknowledging, and resumes
// where it stopped after a restart (events it sees twice are skipped by their
// stream sequence).
//
//	NATS_USER=crm NATS_PASSWORD=$(cut -d: -f2 data/nats.credentials) \
//	  go run ./examples/consumer --nats nats://127.0.0.1:4222 --state customers.json
//
// (the embedded service's NATS credentials; against a cluster, the reader
// user of deploy/nats/nats.conf, or NATS_CREDS / NATS_TOKEN / TLS variables).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Customer is this service's copy of a customer (the fields it cares about
// could be fewer; this example keeps them all).
type Customer struct {
	CustomerID   string          `json:"customerId"`
	CustomerCode string          `json:"customerCode"`
	Name         string          `json:"name"`
	Email        *string         `json:"email"`
	Phone        *string         `json:"phone"`
	Company      *string         `json:"company"`
	Address      json.RawMessage `json:"address"`
	Type         string          `json:"type"`
	Status       string          `json:"status"`
	Notes        *string         `json:"notes"`
	Tags         []string        `json:"tags"`
	ExternalID   *string         `json:"externalId"`
	CreatedBy    string          `json:"createdBy"`
	CreatedAt    string          `json:"createdAt"`
	UpdatedAt    string          `json:"updatedAt"`
	Version      uint64          `json:"version"`
	// Contacts are the customer's links to contacts, by contact id.
	Contacts map[string]Link `json:"contacts,omitempty"`
}

// Link is a customer's link to a contact (contactlinked events).
type Link struct {
	Role    *string `json:"role"`
	Primary bool    `json:"primary"`
	From    *string `json:"from"`
	To      *string `json:"to"`
}

// State is what the example persists.
type State struct {
	LastSeq   uint64               `json:"lastSeq"`
	Customers map[string]*Customer `json:"customers"`
	// Deleted keeps the last state of the deleted customers, for a restore;
	// Merged that of the customers merged into others, for an unmerge.
	Deleted map[string]*Customer `json:"deleted,omitempty"`
	Merged  map[string]*Customer `json:"merged,omitempty"`
	// Skipped counts the events of kinds this consumer does not need.
	Skipped map[string]int `json:"skipped,omitempty"`
	// Contacts and Activities are the live contacts and activities, each
	// as its fields (as the events carry them); a contact also lists the
	// customers it is linked to, as "customers".
	Contacts   map[string]Record `json:"contacts,omitempty"`
	Activities map[string]Record `json:"activities,omitempty"`
}

// Record is the copy of a contact or an activity: its fields by name.
type Record map[string]json.RawMessage

type cloudEvent struct {
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	CustomerVersion uint64          `json:"customerversion"`
	Data            json.RawMessage `json:"data"`
}

// apply folds one event into the state. It is a tolerant reader: fields it
// does not know are ignored (json.Unmarshal does that). An event type it
// does not know is skipped, loudly, when its kind is one it has no use
// for; a new version of a kind it handles stops it, since applying that
// kind wrong would corrupt its copy.
func (s *State) apply(seq uint64, raw []byte) error {
	if seq <= s.LastSeq {
		return nil // seen before (redelivery after a crash)
	}
	var ce cloudEvent
	if err := json.Unmarshal(raw, &ce); err != nil {
		return fmt.Errorf("seq %d: %w", seq, err)
	}
	h, ok := handlers[ce.Type]
	if !ok {
		kind, _, _ := strings.Cut(strings.TrimPrefix(ce.Type, typePrefix), ".")
		if strings.HasPrefix(ce.Type, typePrefix) && handledKinds[kind] {
			return fmt.Errorf("seq %d: %s is a version of %q this consumer cannot read; upgrade it", seq, ce.Type, kind)
		}
		fmt.Fprintf(os.Stderr, "consumer: skipping event %d of type %q: not a kind this consumer needs\n", seq, ce.Type)
		if s.Skipped == nil {
			s.Skipped = map[string]int{}
		}
		s.Skipped[ce.Type]++
		s.LastSeq = seq
		return nil
	}
	if err := h(s, ce); err != nil {
		return fmt.Errorf("seq %d (%s): %w", seq, ce.Type, err)
	}
	s.LastSeq = seq
	return nil
}

const typePrefix = "com.a64core.crm.customer."

// handlers apply the event types this consumer reads (docs/asyncapi.yaml).
var handlers = map[string]func(*State, cloudEvent) error{
	typePrefix + "created.v1": func(s *State, ce cloudEvent) error {
		var c Customer
		if err := json.Unmarshal(ce.Data, &c); err != nil {
			return err
		}
		var d struct{ CreatedAt string }
		json.Unmarshal(ce.Data, &d)
		c.UpdatedAt, c.Version = d.CreatedAt, ce.CustomerVersion
		s.Customers[c.CustomerID] = &c
		return nil
	},
	typePrefix + "updated.v1":     func(s *State, ce cloudEvent) error { return s.applyChanges(ce, "updatedAt") },
	typePrefix + "merged.v1":      func(s *State, ce cloudEvent) error { return s.applyChanges(ce, "mergedAt") },
	typePrefix + "mergeundone.v1": func(s *State, ce cloudEvent) error { return s.applyChanges(ce, "undoneAt") },
	typePrefix + "mergedinto.v1": func(s *State, ce cloudEvent) error {
		// Absorbed by a merge: out of the copy, kept aside for an unmerge.
		return s.move(ce, s.Customers, &s.Merged, "mergedAt")
	},
	typePrefix + "unmerged.v1": func(s *State, ce cloudEvent) error {
		return s.move(ce, s.Merged, &s.Customers, "unmergedAt")
	},
	typePrefix + "deleted.v1": func(s *State, ce cloudEvent) error {
		// Kept aside: a restore brings the customer back as it was.
		return s.move(ce, s.Customers, &s.Deleted, "deletedAt")
	},
	typePrefix + "restored.v1": func(s *State, ce cloudEvent) error {
		return s.move(ce, s.Deleted, &s.Customers, "restoredAt")
	},
	// A link to a contact set or ended: a new version of the customer,
	// its fields unchanged (a contact deleted while the customer is merged
	// into another ends the link there too).
	typePrefix + "contactlinked.v1": func(s *State, ce cloudEvent) error {
		var d struct {
			ContactID string `json:"contactId"`
			Link
		}
		return s.link(ce, &d, func(c *Customer) { c.Contacts[d.ContactID] = d.Link })
	},
	typePrefix + "contactunlinked.v1": func(s *State, ce cloudEvent) error {
		var d struct {
			ContactID string `json:"contactId"`
		}
		return s.link(ce, &d, func(c *Customer) { delete(c.Contacts, d.ContactID) })
	},
}

// The contacts' and activities' events (crm.contacts.>, crm.activities.>).
const (
	contactPrefix  = "com.a64core.crm.contact."
	activityPrefix = "com.a64core.crm.activity."
)

func init() {
	for _, agg := range []struct {
		prefix string
		to     func(*State) *map[string]Record
	}{
		{contactPrefix, func(s *State) *map[string]Record { return &s.Contacts }},
		{activityPrefix, func(s *State) *map[string]Record { return &s.Activities }},
	} {
		handlers[agg.prefix+"created.v1"] = func(s *State, ce cloudEvent) error {
			var r Record
			if err := json.Unmarshal(ce.Data, &r); err != nil {
				return err
			}
			m := agg.to(s)
			if *m == nil {
				*m = map[string]Record{}
			}
			(*m)[ce.Subject] = r
			return nil
		}
		handlers[agg.prefix+"updated.v1"] = func(s *State, ce cloudEvent) error {
			var d struct {
				Changes   map[string]json.RawMessage `json:"changes"`
				UpdatedAt json.RawMessage            `json:"updatedAt"`
			}
			r := (*agg.to(s))[ce.Subject]
			if err := json.Unmarshal(ce.Data, &d); err != nil || r == nil {
				return fmt.Errorf("change of unknown %s (%v)", ce.Subject, err)
			}
			maps.Copy(r, d.Changes)
			r["updatedAt"] = d.UpdatedAt
			return nil
		}
		handlers[agg.prefix+"deleted.v1"] = func(s *State, ce cloudEvent) error {
			delete(*agg.to(s), ce.Subject)
			return nil
		}
	}
	// A contact's links: the customers it is linked to.
	for kind, linked := range map[string]bool{"linked.v1": true, "unlinked.v1": false} {
		handlers[contactPrefix+kind] = func(s *State, ce cloudEvent) error {
			var d struct {
				CustomerID string `json:"customerId"`
			}
			r := s.Contacts[ce.Subject]
			if err := json.Unmarshal(ce.Data, &d); err != nil || r == nil {
				return fmt.Errorf("link of unknown contact %s (%v)", ce.Subject, err)
			}
			var ids []string
			json.Unmarshal(r["customers"], &ids)
			ids = slices.DeleteFunc(ids, func(id string) bool { return id == d.CustomerID })
			if linked {
				ids = append(ids, d.CustomerID)
			}
			r["customers"], _ = json.Marshal(ids)
			return nil
		}
	}
}

// link decodes a link event's data into d and applies fn to the customer
// (wherever the copy keeps it), noting its version.
func (s *State) link(ce cloudEvent, d any, fn func(*Customer)) error {
	if err := json.Unmarshal(ce.Data, d); err != nil {
		return err
	}
	c := s.Customers[ce.Subject]
	if c == nil {
		c = s.Merged[ce.Subject]
	}
	if c == nil {
		return fmt.Errorf("%s of a customer %s this consumer does not have", ce.Type, ce.Subject)
	}
	if c.Contacts == nil {
		c.Contacts = map[string]Link{}
	}
	fn(c)
	c.Version = ce.CustomerVersion
	return nil
}

// applyChanges merges the changed fields of an update (or of a merge, or
// of its undoing) into the copy: re-encode, overlay, decode (a changed field
// this consumer does not know is dropped there). at names the event's time.
func (s *State) applyChanges(ce cloudEvent, at string) error {
	var d struct {
		Changes map[string]json.RawMessage `json:"changes"`
	}
	if err := json.Unmarshal(ce.Data, &d); err != nil {
		return err
	}
	c := s.Customers[ce.Subject]
	if c == nil {
		return fmt.Errorf("change of unknown customer %s", ce.Subject)
	}
	cur, _ := json.Marshal(c)
	var m map[string]json.RawMessage
	json.Unmarshal(cur, &m)
	for k, v := range d.Changes {
		m[k] = v
	}
	merged, _ := json.Marshal(m)
	var next Customer
	if err := json.Unmarshal(merged, &next); err != nil {
		return err
	}
	if next.Tags == nil {
		next.Tags = []string{}
	}
	next.UpdatedAt, next.Version = timeOf(ce, at), ce.CustomerVersion
	s.Customers[ce.Subject] = &next
	return nil
}

// move moves a customer from one map of the state to another (deleted,
// restored, merged, unmerged), noting the event's version and time.
func (s *State) move(ce cloudEvent, from map[string]*Customer, to *map[string]*Customer, at string) error {
	c := from[ce.Subject]
	if c == nil {
		return fmt.Errorf("%s of a customer %s this consumer does not have there", ce.Type, ce.Subject)
	}
	if *to == nil {
		*to = map[string]*Customer{}
	}
	c.UpdatedAt, c.Version = timeOf(ce, at), ce.CustomerVersion
	(*to)[ce.Subject] = c
	delete(from, ce.Subject)
	return nil
}

// timeOf returns the data's time member named at.
func timeOf(ce cloudEvent, at string) string {
	var m map[string]json.RawMessage
	json.Unmarshal(ce.Data, &m)
	var t string
	json.Unmarshal(m[at], &t)
	return t
}

// handledKinds are the kinds of the handled types (created, updated, …).
var handledKinds = func() map[string]bool {
	m := map[string]bool{}
	for t := range handlers {
		kind, _, _ := strings.Cut(strings.TrimPrefix(t, typePrefix), ".")
		m[kind] = true
	}
	return m
}()

func load(path string) (*State, error) {
	s := &State{Customers: map[string]*Customer{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	return s, json.Unmarshal(b, s)
}

func (s *State) save(path string) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path) // atomic: a crash leaves the old or the new copy
}

// authFromEnv returns the NATS authentication of the environment, the
// same variables the crm binaries read: NATS_CREDS (a .creds file),
// NATS_USER and NATS_PASSWORD, or NATS_TOKEN; NATS_CA, NATS_CERT and
// NATS_KEY for TLS. (The embedded service's user and password are in its
// DATA_DIR/nats.credentials, "user:password".)
func authFromEnv() []nats.Option {
	var o []nats.Option
	switch {
	case os.Getenv("NATS_CREDS") != "":
		o = append(o, nats.UserCredentials(os.Getenv("NATS_CREDS")))
	case os.Getenv("NATS_USER") != "":
		o = append(o, nats.UserInfo(os.Getenv("NATS_USER"), os.Getenv("NATS_PASSWORD")))
	case os.Getenv("NATS_TOKEN") != "":
		o = append(o, nats.Token(os.Getenv("NATS_TOKEN")))
	}
	if ca := os.Getenv("NATS_CA"); ca != "" {
		o = append(o, nats.RootCAs(ca))
	}
	if cert := os.Getenv("NATS_CERT"); cert != "" {
		o = append(o, nats.ClientCert(cert, os.Getenv("NATS_KEY")))
	}
	return o
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("consumer", flag.ContinueOnError)
	url := fs.String("nats", "nats://127.0.0.1:4222", "NATS server")
	statePath := fs.String("state", "customers.json", "file holding this service's copy")
	durable := fs.String("durable", "example-consumer", "durable consumer name (renaming it re-reads the stream)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	state, err := load(*statePath)
	if err != nil {
		return fmt.Errorf("load %s: %w", *statePath, err)
	}
	if err := os.MkdirAll(filepath.Dir(*statePath), 0o755); err != nil {
		return err
	}
	nc, err := nats.Connect(*url, append(authFromEnv(), nats.Name("example-consumer"), nats.MaxReconnects(-1))...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, "CRM_CUSTOMERS", jetstream.ConsumerConfig{
		Durable:        *durable,
		FilterSubjects: []string{"crm.customers.>", "crm.contacts.>", "crm.activities.>"},
		AckPolicy:      jetstream.AckAllPolicy,
		AckWait:        30 * time.Second,
		MaxDeliver:     -1, // never give up on an event
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return err
		}
		var last jetstream.Msg
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				return err
			}
			if err := state.apply(md.Sequence.Stream, m.Data()); err != nil {
				return err // stop loudly: never skip an event
			}
			last = m
		}
		if batch.Error() != nil && !errors.Is(batch.Error(), context.DeadlineExceeded) {
			return batch.Error()
		}
		if last != nil {
			if err := state.save(*statePath); err != nil {
				return err
			}
			if err := last.Ack(); err != nil { // AckAll: everything up to here
				return err
			}
		}
	}
	return nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"crm/internal/events"
)

func runTail(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	nf := addNATSFlags(fs, getenv)
	kind := fs.String("kind", "", "only created, updated or deleted events")
	raw := fs.Bool("json", false, "print each CloudEvents document instead of a summary line")
	max := fs.Int("max", 0, "exit after this many events (0 = follow until interrupted)")
	if ok, err := parseFlags(fs, args, stderr, "Usage: crmctl tail [--kind created|updated|deleted] [--json] [--max N] [--nats URL]\n\nFollows new customer events live, as a downstream consumer would.\n\n"); !ok || err != nil {
		return err
	}
	filter := events.SubjectAll
	switch *kind {
	case "":
	case "created", "updated", "deleted":
		filter = events.KindSubjects(events.Kind(*kind))
	default:
		return errors.New("tail: --kind must be created, updated or deleted")
	}
	c, err := nf.connect(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	cons, err := c.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverNewPolicy, FilterSubjects: []string{filter},
	})
	if err != nil {
		return err
	}
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); it.Stop() }()
	fmt.Fprintf(stderr, "following %s on %s (Ctrl-C to stop)\n", filter, *nf.url)
	for n := 0; *max == 0 || n < *max; n++ {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if *raw {
			fmt.Fprintf(stdout, "%s\n", m.Data())
			continue
		}
		ev, err := events.Decode(m.Data())
		if err != nil {
			fmt.Fprintf(stdout, "%s  MALFORMED %s: %v\n", time.Now().UTC().Format(time.RFC3339), m.Subject(), err)
			continue
		}
		code := ""
		switch d := ev.Data.(type) {
		case *events.CustomerCreated:
			code = d.CustomerCode + " " + fmt.Sprintf("%q", d.Name)
		case *events.CustomerUpdated:
			code = d.CustomerCode + " " + changedFields(d.Changes)
		case *events.CustomerDeleted:
			code = d.CustomerCode
		}
		fmt.Fprintf(stdout, "%s  %-8s %s v%d by %s  %s\n", ev.Time.Format(time.RFC3339), ev.Kind(), ev.CustomerID, ev.Version, ev.Actor, code)
	}
	return nil
}

func changedFields(c events.Changes) string {
	var out []string
	add := func(name string, set bool) {
		if set {
			out = append(out, name)
		}
	}
	add("name", c.Name.Set)
	add("email", c.Email.Set)
	add("phone", c.Phone.Set)
	add("company", c.Company.Set)
	add("address", c.Address.Set)
	add("type", c.Type.Set)
	add("status", c.Status.Set)
	add("notes", c.Notes.Set)
	add("tags", c.Tags.Set)
	return fmt.Sprint(out)
}

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"crm/internal/events"
)

func runTail(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	nf := addNATSFlags(fs, getenv)
	var kinds []string
	for _, k := range events.Kinds(events.Customers) {
		kinds = append(kinds, string(k))
	}
	kind := fs.String("kind", "", "only events of this kind: "+strings.Join(kinds, ", "))
	raw := fs.Bool("json", false, "print each CloudEvents document instead of a summary line")
	max := fs.Int("max", 0, "exit after this many events (0 = follow until interrupted)")
	if ok, err := parseFlags(fs, args, stderr, "Usage: crmctl tail [--kind "+strings.Join(kinds, "|")+"] [--json] [--max N] [--nats URL]\n\nFollows new customer events live, as a downstream consumer would.\n\n"); !ok || err != nil {
		return err
	}
	filter := events.SubjectAll
	switch {
	case *kind == "":
	case slices.Contains(kinds, *kind):
		filter = events.KindSubjects(events.Kind(*kind))
	default:
		return fmt.Errorf("tail: --kind must be one of %s", strings.Join(kinds, ", "))
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
			code = d.CustomerCode + " " + fmt.Sprint(d.Changes.Fields())
		case *events.CustomerDeleted:
			code = d.CustomerCode
		case *events.CustomerRestored:
			code = d.CustomerCode
		}
		fmt.Fprintf(stdout, "%s  %-8s %s v%d by %s  %s\n", ev.Time.Format(time.RFC3339), ev.Kind(), ev.AggregateID, ev.Version, ev.Actor, code)
	}
	return nil
}

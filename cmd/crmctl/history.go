package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"crm/internal/audit"
	"crm/internal/events"
	"crm/internal/export"
	"crm/internal/readmodel"
)

func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer, usage string) (bool, error) {
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	// Allow flags after positional arguments (crmctl history C001 --json).
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if f := fs.Lookup(name); f != nil && !strings.Contains(a, "=") {
				if _, isBool := f.Value.(interface{ IsBoolFlag() bool }); !isBool && i+1 < len(args) {
					flags = append(flags, args[i+1])
					i++
				}
			}
			continue
		}
		pos = append(pos, a)
	}
	if err := fs.Parse(append(flags, pos...)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

func runHistory(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("history", flag.ContinueOnError)
	nf := addNATSFlags(fs, getenv)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if ok, err := parseFlags(fs, args, stderr, "Usage: crmctl history <customer id|code> [--json] [--nats URL]\n\nThe customer's events from the stream, oldest first: who changed what, from which value to which.\n\n"); !ok || err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("history: give one customer id or code (e.g. C001)")
	}
	c, err := nf.connect(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	evs, err := c.customerEvents(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	entries := audit.History(evs)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(entries)
	}
	first := evs[0].Data.(*events.CustomerCreated)
	fmt.Fprintf(stdout, "customer %s (%s)\n", first.CustomerID, first.CustomerCode)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VER\tTIME\tKIND\tACTOR\tFIELD\tOLD\tNEW")
	for _, e := range entries {
		head := fmt.Sprintf("%d\t%s\t%s\t%s", e.Version, e.Time.Format(time.RFC3339), e.Kind, e.Actor)
		if len(e.Changes) == 0 {
			fmt.Fprintf(tw, "%s\t\t\t\n", head)
		}
		for i, ch := range e.Changes {
			if i > 0 {
				head = "\t\t\t"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", head, ch.Field, show(ch.Old), show(ch.New))
		}
	}
	return tw.Flush()
}

func show(v any) string {
	if v == nil {
		return "—"
	}
	if s, ok := v.(string); ok {
		if len(s) > 40 {
			s = s[:37] + "..."
		}
		return fmt.Sprintf("%q", s)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func runState(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("state", flag.ContinueOnError)
	nf := addNATSFlags(fs, getenv)
	asOf := fs.String("as-of", "", "RFC 3339 time (default now)")
	if ok, err := parseFlags(fs, args, stderr, "Usage: crmctl state <customer id|code> [--as-of TIME] [--nats URL]\n\nThe customer's state folded from the stream up to a time (JSON). A customer deleted\nby then is an error that says since when (exit status 1).\n\n"); !ok || err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("state: give one customer id or code")
	}
	at := time.Now()
	if *asOf != "" {
		t, err := audit.ParseAsOf(*asOf)
		if err != nil {
			return fmt.Errorf("state: --as-of must be an RFC 3339 time: %w", err)
		}
		at = t
	}
	c, err := nf.connect(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	evs, err := c.customerEvents(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	st, ok := audit.AsOf(evs, at)
	if !ok {
		return fmt.Errorf("customer %s did not exist at %s", fs.Arg(0), at.Format(time.RFC3339))
	}
	if st.Deleted {
		by := ""
		for _, ev := range evs {
			if d, isDel := ev.Data.(*events.CustomerDeleted); isDel && !ev.Time.After(at) {
				by = " by " + d.DeletedBy
			}
		}
		return fmt.Errorf("customer %s (%s) is deleted: since %s%s; --as-of an earlier time shows its state then",
			st.Code, st.ID, st.UpdatedAt.UTC().Format(time.RFC3339Nano), by)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(export.RecordOf(readmodel.FromState(st)))
}

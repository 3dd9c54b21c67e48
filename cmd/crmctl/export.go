package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"crm/internal/audit"
	"crm/internal/events"
	"crm/internal/export"
	"crm/internal/readmodel"
)

func runExport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	nf := addNATSFlags(fs, getenv)
	format := fs.String("format", "ndjson", "ndjson or csv")
	asOf := fs.String("as-of", "", "export the state as of this RFC 3339 time (default now)")
	raw := fs.Bool("events", false, "export the raw CloudEvents (ndjson) instead of customers")
	if ok, err := parseFlags(fs, args, stderr, "Usage: crmctl export [--format ndjson|csv] [--as-of TIME] [--events] [--nats URL]\n\nExports the live customers (folded from the stream, the source of truth), or the raw events,\nto stdout, streaming; a progress bar is drawn on a terminal.\n\n"); !ok || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("export: unexpected argument %q", fs.Arg(0))
	}
	if *format != "ndjson" && *format != "csv" {
		return errors.New("export: --format must be ndjson or csv")
	}
	if *raw && *format != "ndjson" {
		return errors.New("export: --events writes ndjson only")
	}
	var at time.Time
	if *asOf != "" {
		t, err := audit.ParseAsOf(*asOf)
		if err != nil {
			return fmt.Errorf("export: --as-of must be an RFC 3339 time: %w", err)
		}
		at = t
	}
	c, err := nf.connect(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	out := bufio.NewWriterSize(stdout, 1<<16)
	defer out.Flush()
	progress, done := progressBar("export")
	defer done()

	if *raw {
		_, err := c.replay(ctx, "", func(ev events.Event) error {
			if !at.IsZero() && ev.Time.After(at) {
				return nil
			}
			b, err := events.Encode(ev)
			if err != nil {
				return err
			}
			out.Write(b)
			return out.WriteByte('\n')
		}, progress)
		return err
	}
	states, order, _, err := c.foldAll(ctx, at, progress)
	if err != nil {
		return err
	}
	var cw *csv.Writer
	enc := json.NewEncoder(out)
	if *format == "csv" {
		cw = csv.NewWriter(out)
		if err := cw.Write(export.CSVHeader); err != nil {
			return err
		}
	}
	for _, id := range order {
		st := states[id]
		if !st.Exists() {
			continue
		}
		if cw != nil {
			err = cw.Write(export.CSVRow(readmodel.FromState(st)))
		} else {
			err = enc.Encode(export.RecordOf(readmodel.FromState(st)))
		}
		if err != nil {
			return err
		}
	}
	if cw != nil {
		cw.Flush()
		return cw.Error()
	}
	return nil
}

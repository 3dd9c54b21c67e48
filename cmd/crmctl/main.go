// Command crmctl is the operator's tool for the crm service.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "crmctl:", err)
		os.Exit(1)
	}
}

const usage = `crmctl — operator's tool for the crm service

Usage:
  crmctl history <id|code>  a customer's history from the stream (--json for JSON)
  crmctl state <id|code>    a customer's state, optionally --as-of a time
  crmctl tail               follow new events live (--kind created|updated|deleted)
  crmctl verify             compare the read model (customers, links, contacts, activities) with the fold of the stream
  crmctl export             export customers (ndjson|csv, --as-of, --events)
  crmctl import FILE        import customers from CSV/NDJSON through the API's import jobs (--map, --dry-run)
  crmctl token              mint a JWT for development
  crmctl certs DIR          write the NATS cluster's route TLS certificates (compose)

Stream commands connect to --nats (default $NATS_URL, else nats://127.0.0.1:4222, the
embedded service's NATS); verify also opens the read model (--data-dir or --mongodb-url).

Run "crmctl <command> --help" for a command's flags.
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	switch args[0] {
	case "token":
		return runToken(args[1:], getenv, stdout, stderr)
	case "history":
		return runHistory(ctx, args[1:], getenv, stdout, stderr)
	case "state":
		return runState(ctx, args[1:], getenv, stdout, stderr)
	case "tail":
		return runTail(ctx, args[1:], getenv, stdout, stderr)
	case "verify":
		return runVerify(ctx, args[1:], getenv, stdout, stderr)
	case "export":
		return runExport(ctx, args[1:], getenv, stdout, stderr)
	case "import":
		return runImport(ctx, args[1:], getenv, stdout, stderr)
	case "certs":
		return runCerts(args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"crm/internal/devcerts"
)

func runCerts(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("certs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	hosts := fs.String("hosts", "nats-1,nats-2,nats-3,localhost,127.0.0.1", "comma-separated names and addresses of the NATS nodes")
	validity := fs.Duration("validity", 2*365*24*time.Hour, "how long the certificates are valid")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: crmctl certs [--hosts LIST] [--validity D] DIR\n\n"+
			"Writes a new CA and the NATS nodes' route certificate (server and client, for\n"+
			"mutual TLS between the nodes) to DIR: "+devcerts.CAFile+", "+devcerts.CertFile+", "+devcerts.KeyFile+" (0600).\n"+
			"For the compose cluster: crmctl certs deploy/certs.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("certs: give the directory to write to")
	}
	if err := devcerts.Write(fs.Arg(0), strings.Split(*hosts, ","), *validity); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s, %s and %s to %s\n", devcerts.CAFile, devcerts.CertFile, devcerts.KeyFile, fs.Arg(0))
	return nil
}

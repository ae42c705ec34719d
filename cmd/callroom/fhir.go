package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/callroom/callroom/fhir"
)

// fhirCommand: callroom fhir subscribe.
func fhirCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "subscribe" {
		fmt.Fprintln(stderr, "usage: callroom fhir subscribe [--config FILE] [--public-url URL]")
		return errors.New("unknown fhir command")
	}
	fs := flag.NewFlagSet("fhir subscribe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", env("CALLROOM_FHIR_CONFIG", ""), "EHR connection file (env CALLROOM_FHIR_CONFIG)")
	public := fs.String("public-url", env("CALLROOM_PUBLIC_URL", ""), "URL the EHR calls callroom back at (env CALLROOM_PUBLIC_URL)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *path == "" {
		return errors.New("no EHR configuration: set CALLROOM_FHIR_CONFIG or pass --config")
	}
	cfg, _, err := fhir.LoadConfig(*path, *public)
	if err != nil {
		return err
	}
	refs, err := fhir.Subscribe(ctx, cfg)
	if err != nil {
		return err
	}
	for i, r := range refs {
		fmt.Fprintf(stdout, "%s\t%s\n", cfg.Subscriptions[i].Name, r)
	}
	return nil
}

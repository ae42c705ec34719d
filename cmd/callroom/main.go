// Command callroom is the clinical paging and on-call routing service.
//
//	callroom serve [--demo]           HTTP API and background workers
//	callroom migrate                  bring the database schema up to date
//	callroom user add ...             create a user
//	callroom token create ...         print a new API token for a user
//	callroom audit verify             check the audit trail's hash chain
//
// Configuration comes from environment variables; flags override them. See
// README.md for the list.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

const usage = `callroom: clinical paging and on-call routing

Usage:
  callroom serve [--demo] [--http-addr ADDR] [--database-url URL]
  callroom migrate [--database-url URL]
  callroom user add --email E --name N --role ROLE[,ROLE] [--npi NPI] [--time-zone TZ] [--password-stdin]
  callroom token create --email E [--name N]
  callroom keys init|rotate|rewrap [--file PATH]
  callroom fhir subscribe [--config FILE] [--public-url URL]
  callroom audit verify|purge [--database-url URL]

Roles: nurse, physician, scheduler, admin, auditor.
Run 'callroom COMMAND -h' for a command's flags. Configuration is read from
the environment (DATABASE_URL, CALLROOM_HTTP_ADDR, CALLROOM_PUBLIC_URL, ...).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "callroom:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, stderr)
	case "migrate":
		return migrate(ctx, rest, stderr)
	case "user":
		if len(rest) == 0 || rest[0] != "add" {
			return errors.New("usage: callroom user add --email E --name N --role ROLE[,ROLE]")
		}
		return userAdd(ctx, rest[1:], stdin, stdout, stderr)
	case "token":
		if len(rest) == 0 || rest[0] != "create" {
			return errors.New("usage: callroom token create --email E [--name N]")
		}
		return tokenCreate(ctx, rest[1:], stdout, stderr)
	case "fhir":
		return fhirCommand(ctx, rest, stdout, stderr)
	case "keys":
		return keysCommand(ctx, rest, stdout, stderr)
	case "audit":
		return auditCommand(ctx, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func newLogger(w io.Writer, cfg *config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.logLevel}
	if cfg.logFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

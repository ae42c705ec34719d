package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/internal/pg"
)

func userAdd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs, cfg, check := newFlags("user add", stderr, false)
	email := fs.String("email", "", "email address (required)")
	name := fs.String("name", "", "full name (required)")
	roles := fs.String("role", "", "comma-separated roles: nurse, physician, scheduler, admin, auditor")
	npi := fs.String("npi", "", "National Provider Identifier (optional)")
	tz := fs.String("time-zone", "UTC", "IANA time zone")
	pwStdin := fs.Bool("password-stdin", false, "read a password for web sign-in from the first line of standard input")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := check(); err != nil {
		return err
	}
	in := auth.NewUser{Email: *email, Name: *name, TimeZone: *tz}
	for _, r := range strings.Split(*roles, ",") {
		if r = strings.TrimSpace(r); r != "" {
			in.Roles = append(in.Roles, r)
		}
	}
	if *npi != "" {
		in.NPI = npi
	}
	if *pwStdin {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		pw := strings.TrimRight(line, "\r\n")
		in.Password = &pw
	}
	pool, err := pg.Open(ctx, cfg.databaseURL, pg.Options{MaxConns: 2})
	if err != nil {
		return err
	}
	defer pool.Close()
	u, err := auth.NewStore(pool).CreateUser(ctx, audit.Actor{ClientAddr: "cli"}, in)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, u.ID)
	return nil
}

func tokenCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cfg, check := newFlags("token create", stderr, false)
	email := fs.String("email", "", "the user the token acts as (required)")
	name := fs.String("name", "", "a label for the token, e.g. the client using it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := check(); err != nil {
		return err
	}
	if *email == "" {
		return errors.New("--email is required")
	}
	pool, err := pg.Open(ctx, cfg.databaseURL, pg.Options{MaxConns: 2})
	if err != nil {
		return err
	}
	defer pool.Close()
	store := auth.NewStore(pool)
	u, err := store.UserByEmail(ctx, *email)
	if err != nil {
		return fmt.Errorf("%s: %w", *email, err)
	}
	_, secret, err := store.CreateToken(ctx, audit.Actor{ClientAddr: "cli"}, u.ID, *name, nil)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, secret)
	return nil
}

package mailgateway_test

import (
	"context"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/escalation"
	"github.com/callroom/callroom/internal/apitest"
	"github.com/callroom/callroom/mailgateway"
)

// These tests drive the gateway as `callroom serve` wires it with swaks, a
// real SMTP client (Debian package swaks; scripts/test-deps.sh installs it
// with the Perl modules STARTTLS needs). swaks prints the whole SMTP
// conversation; a line "<** 550 ..." is a reply the server refused with.

// swaks runs swaks against addr and returns its transcript.
func swaks(t *testing.T, addr string, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("swaks")
	if err != nil {
		t.Fatal("swaks is not installed: run scripts/test-deps.sh (make test does)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--server", addr, "--helo", "lab-analyzer.example.org",
		"--timeout", "30"}, args...)...)
	out, _ := cmd.CombinedOutput() // the exit code only says "failed"; the transcript says how
	return string(out)
}

// wantReply fails unless the transcript has a server reply starting with
// prefix ("<~  250", "<** 550 5.1.1", ...), after TLS too.
func wantReply(t *testing.T, transcript, code string) {
	t.Helper()
	if !hasReply(transcript, code) {
		t.Fatalf("no %s reply in the swaks transcript:\n%s", code, transcript)
	}
}

// dataReply returns the server's answer to the end of the message (the
// reply after the lone "." line), "" if the message was never sent: MAIL
// and RCPT are answered "250 2.0.0" too, so only this line says whether
// the message was taken.
func dataReply(transcript string) string {
	lines := strings.Split(transcript, "\n")
	for i, line := range lines {
		if l := strings.TrimSpace(line); (l == "-> ." || l == "~> .") && i+1 < len(lines) {
			next := strings.TrimSpace(lines[i+1])
			for _, mark := range []string{"<- ", "<~ ", "<** ", "<~* "} {
				if rest, ok := strings.CutPrefix(next, mark); ok {
					return strings.TrimSpace(rest)
				}
			}
		}
	}
	return ""
}

// wantAccepted fails unless the server took the message.
func wantAccepted(t *testing.T, transcript string) {
	t.Helper()
	if !strings.HasPrefix(dataReply(transcript), "250 2.0.0") {
		t.Fatalf("the message was not accepted:\n%s", transcript)
	}
}

// hasReply reports whether the server answered code anywhere in a swaks
// transcript (plain, TLS, or error-marked lines).
func hasReply(transcript, code string) bool {
	for _, line := range strings.Split(transcript, "\n") {
		line = strings.TrimSpace(line)
		for _, mark := range []string{"<- ", "<~ ", "<** ", "<~* "} {
			if rest, ok := strings.CutPrefix(line, mark); ok && strings.HasPrefix(strings.TrimSpace(rest), code) {
				return true
			}
		}
	}
	return false
}

// swaksFixture is a whole callroom with the gateway on, for swaks.
func swaksFixture(t *testing.T, mc *mailgateway.Config) *fixture {
	t.Helper()
	if mc == nil {
		mc = &mailgateway.Config{}
	}
	mc.Domains = []string{testDomain}
	mc.ReplySecret = testSecret
	return fixtureOn(t, apitest.Start(t, apitest.Options{Mail: mc}))
}

func TestSwaksPlainSubmission(t *testing.T) {
	t.Parallel()
	f := swaksFixture(t, nil)
	out := swaks(t, f.in.MailAddr, "--from", "analyzer@lab.example.org", "--to", "cardiology@"+testDomain,
		"--header", "Subject: URGENT: troponin 0.9 ng/mL bed 4", "--body", "Repeat troponin rising.")
	wantAccepted(t, out)
	p := onePage(t, f.in)
	if p.Priority != escalation.Urgent || p.Summary != "troponin 0.9 ng/mL bed 4" || p.Body != "Repeat troponin rising." {
		t.Fatalf("page = %+v", p)
	}
	waitFor(t, "Dr A notified", func() bool { return notificationFor(t, f, p.ID, f.doctor.User.ID) != uuid.Nil })
}

func TestSwaksSTARTTLSAndAuth(t *testing.T) {
	t.Parallel()
	serverTLS, _, _, _ := selfSignedTLS(t)
	hash, err := auth.HashPassword("answering service secret")
	if err != nil {
		t.Fatal(err)
	}
	// No network may send unauthenticated: every page needs AUTH, and AUTH
	// needs STARTTLS first.
	f := swaksFixture(t, &mailgateway.Config{TLSConfig: serverTLS, AllowedNetworks: []netip.Prefix{},
		Credentials: []mailgateway.Credential{{Username: "answering", Hash: hash}}})
	to := "cardiology@" + testDomain
	msg := []string{"--from", "desk@answering.example.net", "--to", to, "--header", "Subject: Call Dr Smith re consult"}

	out := swaks(t, f.in.MailAddr, append(msg, "--tls", "--auth", "PLAIN", "--auth-user", "answering",
		"--auth-password", "answering service secret")...)
	wantReply(t, out, "235")
	wantAccepted(t, out)
	if p := onePage(t, f.in); p.Summary != "Call Dr Smith re consult" {
		t.Fatalf("summary = %q", p.Summary)
	}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"wrong password", []string{"--tls", "--auth", "PLAIN", "--auth-user", "answering", "--auth-password", "guess"}, "535"},
		{"TLS without AUTH", []string{"--tls"}, "530"},
		// swaks must not even be offered AUTH in the clear.
		{"AUTH before STARTTLS", []string{"--auth", "PLAIN", "--auth-user", "answering", "--auth-password", "answering service secret"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := swaks(t, f.in.MailAddr, append(msg, tt.args...)...)
			if tt.want != "" {
				wantReply(t, out, tt.want)
			} else if !strings.Contains(out, "Host did not advertise authentication") {
				t.Fatalf("AUTH was offered without TLS:\n%s", out)
			}
		})
	}
	if n := len(pages(t, f.in)); n != 1 {
		t.Fatalf("%d pages, want only the authenticated one", n)
	}
}

func TestSwaksRefusals(t *testing.T) {
	t.Parallel()
	f := swaksFixture(t, &mailgateway.Config{MaxMessageBytes: 64 << 10})
	big := filepath.Join(t.TempDir(), "big.eml")
	writeFile(t, big, []byte("From: a@lab.example.org\r\nSubject: big\r\n\r\n"+strings.Repeat("0123456789abcdef\r\n", 8192)))
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown recipient", []string{"--to", "nephrology@" + testDomain}, "550 5.1.1"},
		{"another domain", []string{"--to", "someone@example.com"}, "550 5.7.1"},
		{"oversized", []string{"--to", "cardiology@" + testDomain, "--data", "@" + big}, "552"},
		{"malformed", []string{"--to", "cardiology@" + testDomain, "--data", "this is not a header\n\nbody\n"}, "554"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := swaks(t, f.in.MailAddr, append([]string{"--from", "analyzer@lab.example.org", "--header", "Subject: x"}, tt.args...)...)
			wantReply(t, out, tt.want)
			if tt.name == "unknown recipient" && strings.Contains(out, "354") {
				t.Fatal("DATA was reached for an unknown recipient")
			}
		})
	}
	if n := len(pages(t, f.in)); n != 0 {
		t.Fatalf("%d pages from refused mail", n)
	}
}

func TestSwaksAttachmentAndDuplicate(t *testing.T) {
	t.Parallel()
	f := swaksFixture(t, nil)
	pdf := filepath.Join(t.TempDir(), "ecg.pdf")
	writeFile(t, pdf, []byte("%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"))
	args := []string{"--from", "monitor@icu.example.org", "--to", "cardiology@" + testDomain,
		"--header", "Subject: STAT: VT run bed 7", "--header", "Message-Id: <vt-bed7-0001@icu.example.org>",
		"--body", "Telemetry alarm: ventricular tachycardia, 14 beats.", "--attach-type", "application/pdf", "--attach", "@" + pdf}
	wantAccepted(t, swaks(t, f.in.MailAddr, args...))
	// The monitor retries the same message: still one page.
	wantAccepted(t, swaks(t, f.in.MailAddr, args...))
	p := onePage(t, f.in)
	if p.Priority != escalation.Stat || p.Summary != "VT run bed 7" ||
		!strings.HasPrefix(p.Body, "Telemetry alarm: ventricular tachycardia, 14 beats.") || !strings.Contains(p.Body, "attachment") {
		t.Fatalf("page = %+v", p)
	}
}

// TestSwaksDatabaseDown stops the database under the gateway while swaks
// sends: the answer is 451 (retry), nothing is created, and the retry once
// the database is back makes exactly one page.
func TestSwaksDatabaseDown(t *testing.T) {
	t.Parallel()
	f := swaksFixture(t, nil)
	ctx := context.Background()
	// Refuse new connections to this test's database and end the ones open:
	// to callroom the database is gone.
	admin := f.in.DB.Admin(t)
	down := func() {
		if _, err := admin.Exec(ctx, "ALTER DATABASE "+f.in.DB.Name+" ALLOW_CONNECTIONS false"); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", f.in.DB.Name); err != nil {
			t.Fatal(err)
		}
	}
	up := func() {
		if _, err := admin.Exec(ctx, "ALTER DATABASE "+f.in.DB.Name+" ALLOW_CONNECTIONS true"); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"--from", "analyzer@lab.example.org", "--to", "cardiology@" + testDomain,
		"--header", "Subject: STAT: lactate 6.1", "--header", "Message-Id: <lactate-0001@lab.example.org>", "--body", "Sepsis screen positive."}
	down()
	out := swaks(t, f.in.MailAddr, args...)
	up()
	wantReply(t, out, "451")
	// The sender retries, as an MTA does after a 451. Connections the pool
	// still holds from before the outage fail once each (and answer 451
	// again); the first retry to get through makes the page.
	var accepted bool
	for try := 0; try < 30 && !accepted; try++ {
		out := swaks(t, f.in.MailAddr, args...)
		switch {
		case strings.HasPrefix(dataReply(out), "250 2.0.0"):
			accepted = true
		case hasReply(out, "451"):
			time.Sleep(100 * time.Millisecond)
		default:
			t.Fatalf("retry answered neither 250 nor 451:\n%s", out)
		}
	}
	if !accepted {
		t.Fatal("no retry accepted within 30 tries after the database came back")
	}
	onePage(t, f.in)
}

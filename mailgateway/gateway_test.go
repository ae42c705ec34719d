package mailgateway_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/escalation"
	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/mailgateway"
)

func TestPlainSubmissionFromAllowedNetwork(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	g := startGateway(t, f.in, nil)
	mustSend(t, g.Addr, mail{
		From: "analyzer@lab.example.org", To: []string{"Cardiology@Pager.Example.Org"},
		Subject: "STAT: K+ 6.9 mmol/L bed 12", Body: "Critical potassium, repeat sample drawn.\n",
	})
	p := onePage(t, f.in)
	if p.ServiceID == nil || *p.ServiceID != f.serviceID || p.Priority != escalation.Stat ||
		p.Summary != "K+ 6.9 mmol/L bed 12" || p.Body != "Critical potassium, repeat sample drawn." {
		t.Fatalf("page = %+v", p)
	}
	if p.DedupKey == nil || !strings.HasPrefix(*p.DedupKey, "msgid:") {
		t.Errorf("dedup key = %v", p.DedupKey)
	}
	events, err := audit.List(context.Background(), f.in.DB.Pool, audit.Filter{ObjectID: p.ID.String()})
	if err != nil {
		t.Fatal(err)
	}
	var create, email *audit.Event
	for i, e := range events {
		switch e.Action {
		case "page.create":
			create = &events[i]
		case "page.email":
			email = &events[i]
		}
	}
	if create == nil || create.ClientAddr != "smtp:127.0.0.1" || create.ActorID != nil {
		t.Errorf("page.create audit = %+v, want the system actor from smtp:127.0.0.1", create)
	}
	if email == nil || email.Details["envelope_sender"] != "analyzer@lab.example.org" || email.Details["created"] != true {
		t.Errorf("page.email audit = %+v", email)
	}
	// The first step fires: Dr A is notified.
	waitFor(t, "Dr A notified", func() bool { return notificationFor(t, f, p.ID, f.doctor.User.ID) != uuid.Nil })
	for _, logs := range []string{g.Logs(), f.in.LogText()} {
		// "6.9" alone also matches timings such as "ms":6.983; look for the
		// phrases only the message holds.
		if strings.Contains(logs, "6.9 mmol") || strings.Contains(logs, "potassium") {
			t.Errorf("the message text was logged:\n%s", logs)
		}
	}
}

func TestSTARTTLSAndAuthPlain(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	serverTLS, pool, _, _ := selfSignedTLS(t)
	hash, err := auth.HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, f.in, func(c *mailgateway.Config, _ *mailgateway.Deps) {
		c.TLSConfig = serverTLS
		c.AllowedNetworks = []netip.Prefix{} // nobody sends unauthenticated
		c.Credentials = []mailgateway.Credential{{Username: "answering-service", Hash: hash}}
		c.AllowedSenders = []string{"@only-this-domain.example.org"} // does not apply after AUTH
	})
	clientTLS := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}

	t.Run("authenticated", func(t *testing.T) {
		c := dial(t, g.Addr, clientOpts{StartTLS: clientTLS, User: "answering-service", Password: "correct horse battery"})
		if err := send(c, mail{From: "desk@answering.example.net", To: []string{"cardiology@" + testDomain},
			Subject: "Call back Dr Smith re: consult", Body: "x"}); err != nil {
			t.Fatal(err)
		}
		c.Quit()
		p := onePage(t, f.in)
		if p.Summary != "Call back Dr Smith re: consult" {
			t.Fatalf("summary = %q", p.Summary)
		}
	})
	t.Run("TLS without AUTH from a network that is not allowed", func(t *testing.T) {
		c := dial(t, g.Addr, clientOpts{StartTLS: clientTLS})
		defer c.Quit()
		wantCode(t, send(c, mail{From: "desk@answering.example.net", To: []string{"cardiology@" + testDomain}, Subject: "x"}), atMail, 530)
	})
	t.Run("wrong password", func(t *testing.T) {
		c, err := smtpDialStartTLS(g.Addr, clientTLS)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		err = c.Auth(plain("answering-service", "wrong"))
		if code := smtpCode(err); code != 535 {
			t.Fatalf("AUTH with a wrong password: %v, want 535", err)
		}
	})
	t.Run("AUTH before STARTTLS is refused", func(t *testing.T) {
		conn, err := net.Dial("tcp", g.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(conn)
		readReply(t, r) // greeting
		fmt.Fprintf(conn, "EHLO client.test\r\n")
		ehlo := readReply(t, r)
		if strings.Contains(ehlo, "AUTH") || !strings.Contains(ehlo, "STARTTLS") {
			t.Errorf("EHLO before TLS = %q: want STARTTLS offered and AUTH not", ehlo)
		}
		creds := base64.StdEncoding.EncodeToString([]byte("\x00answering-service\x00correct horse battery"))
		fmt.Fprintf(conn, "AUTH PLAIN %s\r\n", creds)
		if got := readReply(t, r); !strings.HasPrefix(got, "5") {
			t.Errorf("AUTH before TLS = %q, want a 5xx refusal", got)
		}
		fmt.Fprintf(conn, "MAIL FROM:<desk@answering.example.net>\r\n")
		if got := readReply(t, r); !strings.HasPrefix(got, "530 5.7.0") {
			t.Errorf("MAIL unauthenticated = %q, want 530 5.7.0", got)
		}
	})
	if n := len(pages(t, f.in)); n != 1 {
		t.Errorf("%d pages, want only the authenticated one", n)
	}
}

func TestUnknownRecipientRefusedBeforeData(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	g := startGateway(t, f.in, nil)
	c := dial(t, g.Addr, clientOpts{})
	defer c.Quit()
	for _, tt := range []struct {
		to   string
		code int
		enh  string
	}{
		{"neurology@" + testDomain, 550, "5.1.1"},
		{"page+nobody@" + testDomain, 550, "5.1.1"},
		{"page+" + uuid.NewString() + "@" + testDomain, 550, "5.1.1"},
		{"reply+" + uuid.NewString() + ".00000000000000000000@" + testDomain, 550, "5.1.1"},
		{"cardiology+whenever@" + testDomain, 550, "5.1.1"},
		{"cardiology@elsewhere.example.org", 550, "5.7.1"},
	} {
		if err := c.Mail("nurse@hospital.example.org", nil); err != nil {
			t.Fatal(err)
		}
		err := c.Rcpt(tt.to, nil)
		if code := smtpCode(err); code != tt.code {
			t.Errorf("RCPT %s: %v, want %d", tt.to, err, tt.code)
		}
		if got := enhanced(err); got != tt.enh {
			t.Errorf("RCPT %s: enhanced code %s, want %s", tt.to, got, tt.enh)
		}
		// With no recipient accepted the server does not take DATA at all.
		if _, err := c.Data(); smtpCode(err) != 502 {
			t.Errorf("DATA after a refused RCPT: %v, want 502", err)
		}
		c.Reset()
	}
	if n := len(pages(t, f.in)); n != 0 {
		t.Errorf("%d pages", n)
	}
}

func TestSenderPolicy(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	g := startGateway(t, f.in, func(c *mailgateway.Config, _ *mailgateway.Deps) {
		c.AllowedSenders = []string{"@lab.example.org", "monitor@icu.example.org"}
	})
	to := []string{"cardiology@" + testDomain}
	wantCode(t, sendOne(t, g.Addr, mail{From: "someone@elsewhere.example.org", To: to, Subject: "x"}), atRcpt, 550)
	wantCode(t, sendOne(t, g.Addr, mail{From: "", To: to, Subject: "x"}), atRcpt, 550)
	mustSend(t, g.Addr, mail{From: "Analyzer@LAB.example.org", To: to, Subject: "from the lab"})
	mustSend(t, g.Addr, mail{From: "monitor@icu.example.org", To: to, Subject: "from the ICU"})
	if n := len(pages(t, f.in)); n != 2 {
		t.Errorf("%d pages, want 2", n)
	}
}

func TestOversizedMessage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	g := startGateway(t, f.in, func(c *mailgateway.Config, _ *mailgateway.Deps) { c.MaxMessageBytes = 8 << 10 })
	c := dial(t, g.Addr, clientOpts{})
	defer c.Quit()
	big := strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n", 400) // 26 KiB
	err := send(c, mail{From: "a@lab.example.org", To: []string{"cardiology@" + testDomain}, Subject: "big", Body: big})
	wantCode(t, err, atDot, 552)
	// The connection is still in step: the next message goes through.
	if err := send(c, mail{From: "a@lab.example.org", To: []string{"cardiology@" + testDomain}, Subject: "small"}); err != nil {
		t.Fatalf("after a refused oversized message: %v", err)
	}
	if p := onePage(t, f.in); p.Summary != "small" {
		t.Fatalf("page = %q", p.Summary)
	}
}

func TestMultipartWithAttachment(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	g := startGateway(t, f.in, nil)
	data := `From: Lab <analyzer@lab.example.org>
To: cardiology@pager.example.org
Subject: =?UTF-8?Q?Troponin_=E2=86=91_bed_7?=
Message-ID: <multi-1@lab.example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="XYZ"

--XYZ
Content-Type: multipart/alternative; boundary="ALT"

--ALT
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

Troponin 2.1 ng/mL =E0 08:00.
--ALT
Content-Type: text/html; charset=utf-8

<p>Troponin <b>2.1</b> ng/mL</p>
--ALT--

--XYZ
Content-Type: application/pdf; name="report.pdf"
Content-Disposition: attachment; filename="report.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQKc2VjcmV0IHBkZiBjb250ZW50Cg==
--XYZ--
`
	mustSend(t, g.Addr, mail{From: "analyzer@lab.example.org", To: []string{"cardiology@" + testDomain}, Data: data})
	p := onePage(t, f.in)
	if p.Summary != "Troponin ↑ bed 7" {
		t.Errorf("summary = %q", p.Summary)
	}
	want := "Troponin 2.1 ng/mL à 08:00.\n\n(1 attachment not shown)"
	if p.Body != want {
		t.Errorf("body = %q, want %q", p.Body, want)
	}
}

func TestHTMLOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	g := startGateway(t, f.in, nil)
	data := `From: monitor@icu.example.org
To: cardiology@pager.example.org
Message-ID: <html-1@icu.example.org>
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8

<html><head><title>t</title><style>p{color:red}</style></head><body>
<p>V-tach &amp; hypotension, bed&nbsp;3</p><p>BP 70/40<br>HR 180</p><script>alert(1)</script>
</body></html>
`
	mustSend(t, g.Addr, mail{From: "monitor@icu.example.org", To: []string{"cardiology@" + testDomain}, Data: data})
	p := onePage(t, f.in)
	if p.Summary != "V-tach & hypotension, bed 3" {
		t.Errorf("summary (first line, no subject) = %q", p.Summary)
	}
	if p.Body != "V-tach & hypotension, bed 3\n\nBP 70/40\nHR 180" {
		t.Errorf("body = %q", p.Body)
	}
}

func TestDuplicateMessageIDMakesOnePage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	g := startGateway(t, f.in, nil)
	m := mail{From: "analyzer@lab.example.org", To: []string{"cardiology@" + testDomain}, Subject: "lactate 5.2",
		MessageID: "<dup-42@lab.example.org>"}
	mustSend(t, g.Addr, m)
	mustSend(t, g.Addr, m)
	p := onePage(t, f.in)
	events, err := audit.List(context.Background(), f.in.DB.Pool, audit.Filter{Action: "page.email", ObjectID: p.ID.String()})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].Details["created"] != true || events[1].Details["created"] != false {
		t.Errorf("page.email audit = %+v, want created then deduplicated", events)
	}
}

func TestSeveralServicesInOneMessage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	neuro := f.service(t, "Neurology", "neuro")
	g := startGateway(t, f.in, nil)
	mustSend(t, g.Addr, mail{From: "er@hospital.example.org",
		To:      []string{"cardiology@" + testDomain, "neuro+asap@" + testDomain, "cardiology@" + testDomain, "page+" + f.doctor.User.ID.String() + "@" + testDomain},
		Subject: "Code stroke ED bay 2"})
	ps := pages(t, f.in)
	if len(ps) != 3 {
		t.Fatalf("%d pages, want one per service and person", len(ps))
	}
	got := map[string]escalation.Priority{}
	for _, p := range ps {
		switch {
		case p.ServiceID != nil && *p.ServiceID == f.serviceID:
			got["cardiology"] = p.Priority
		case p.ServiceID != nil && *p.ServiceID == neuro:
			got["neuro"] = p.Priority
		case p.UserID != nil && *p.UserID == f.doctor.User.ID:
			got["doctor"] = p.Priority
		}
	}
	if got["cardiology"] != escalation.Routine || got["neuro"] != escalation.ASAP || got["doctor"] != escalation.Routine {
		t.Errorf("priorities = %v", got)
	}
}

func TestPagePersonByAddress(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	g := startGateway(t, f.in, nil)
	local, domain, _ := strings.Cut(f.doctor.User.Email, "@")
	for _, to := range []string{"page+" + local, "page+" + local + "=" + domain, "page+" + strings.ToUpper(f.doctor.User.ID.String())} {
		mustSend(t, g.Addr, mail{From: "nurse@hospital.example.org", To: []string{to + "@" + testDomain}, Subject: "please call 4West " + to})
	}
	for _, p := range pages(t, f.in) {
		if p.UserID == nil || *p.UserID != f.doctor.User.ID {
			t.Errorf("page %+v is not to Dr A", p)
		}
	}
}

// failingPages fails Create calls as told, around the real store.
type failingPages struct {
	*escalation.Store
	failAt atomic.Int32 // fail the call with this number (1-based); 0 never
	calls  atomic.Int32
}

func (p *failingPages) Create(ctx context.Context, by audit.Actor, in escalation.NewPage) (escalation.Page, bool, error) {
	if n := p.calls.Add(1); n == p.failAt.Load() {
		return escalation.Page{}, false, errors.New("connection reset by peer")
	}
	return p.Store.Create(ctx, by, in)
}

// batchPages offers CreateBatch, which fails.
type batchPages struct {
	failingPages
	batches atomic.Int32
}

func (p *batchPages) CreateBatch(ctx context.Context, by audit.Actor, in []escalation.NewPage) ([]escalation.Page, []bool, error) {
	p.batches.Add(1)
	return nil, nil, errors.New("database is shutting down")
}

// A failure after the first of two pages answers 451; the sender's retry
// completes the set without a duplicate.
func TestPartialFailureRetryCompletesWithoutDuplicates(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.service(t, "Neurology", "neuro")
	fp := &failingPages{Store: f.in.Server.Pages}
	fp.failAt.Store(2)
	g := startGateway(t, f.in, func(_ *mailgateway.Config, d *mailgateway.Deps) { d.Pages = fp })
	m := mail{From: "er@hospital.example.org", To: []string{"cardiology@" + testDomain, "neuro@" + testDomain},
		Subject: "Code stroke", MessageID: "<retry-1@hospital.example.org>"}
	wantCode(t, sendOne(t, g.Addr, m), atDot, 451)
	mustSend(t, g.Addr, m)
	if n := len(pages(t, f.in)); n != 2 {
		t.Fatalf("%d pages after the retry, want 2", n)
	}
	if !strings.Contains(g.Logs(), "connection reset by peer") {
		t.Error("the failure was not logged")
	}
}

func TestBatchCreatorIsUsedForSeveralPages(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.service(t, "Neurology", "neuro")
	bp := &batchPages{failingPages: failingPages{Store: f.in.Server.Pages}}
	g := startGateway(t, f.in, func(_ *mailgateway.Config, d *mailgateway.Deps) { d.Pages = bp })
	wantCode(t, sendOne(t, g.Addr, mail{From: "er@hospital.example.org",
		To: []string{"cardiology@" + testDomain, "neuro@" + testDomain}, Subject: "x"}), atDot, 451)
	if bp.batches.Load() != 1 || bp.calls.Load() != 0 {
		t.Errorf("CreateBatch called %d times, Create %d times", bp.batches.Load(), bp.calls.Load())
	}
	if n := len(pages(t, f.in)); n != 0 {
		t.Errorf("%d pages", n)
	}
}

func TestDatabaseDownMidDelivery(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// The gateway gets its own pool on the same database, closed between
	// RCPT and DATA: the instance itself stays up to check the result.
	pool, err := pg.Open(context.Background(), f.in.DB.URL, pg.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := escalation.NewStore(pool, slog.New(slog.DiscardHandler))
	store.SetRiver(f.in.Server.River)
	g := startGateway(t, f.in, func(_ *mailgateway.Config, d *mailgateway.Deps) {
		d.Pages, d.Users, d.DB = store, auth.NewStore(pool), pool
	})
	c := dial(t, g.Addr, clientOpts{})
	defer c.Quit()
	if err := c.Mail("analyzer@lab.example.org", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("cardiology@"+testDomain, nil); err != nil {
		t.Fatal(err)
	}
	pool.Close()
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write(mail{From: "analyzer@lab.example.org", To: []string{"cardiology@" + testDomain}, Subject: "glucose 1.9"}.bytes())
	err = w.Close()
	if smtpCode(err) != 451 || enhanced(err) != "4.3.0" {
		t.Fatalf("end of data with the database down: %v, want 451 4.3.0", err)
	}
	if n := len(pages(t, f.in)); n != 0 {
		t.Errorf("%d pages", n)
	}
	// With the database down RCPT is a 451 too, never a 550.
	if err := c.Mail("analyzer@lab.example.org", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("cardiology@"+testDomain, nil); smtpCode(err) != 451 {
		t.Errorf("RCPT with the database down: %v, want 451", err)
	}
}

func TestRefusedMessages(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	g := startGateway(t, f.in, nil)
	to := []string{"cardiology@" + testDomain}
	var bomb strings.Builder
	bomb.WriteString("From: a@lab.example.org\nSubject: bomb\n")
	for i := range 5000 {
		fmt.Fprintf(&bomb, "X-Filler-%d: %d\n", i, i)
	}
	bomb.WriteString("\nbody\n")
	huge := "From: a@lab.example.org\nSubject: huge\nX-Big: " + strings.Repeat("a ", 40000) + "\n\nbody\n"
	for _, tt := range []struct {
		name string
		data string
		code int
	}{
		{"header bomb", bomb.String(), 552},
		{"huge header", strings.ReplaceAll(huge, "a a", "a\n a"), 552},
		{"no header", "this is not a header\n\nbody\n", 554},
		{"empty", "From: a@lab.example.org\nMessage-ID: <e@x>\n\n\n", 554},
		{"only an attachment", "From: a@lab.example.org\nContent-Type: application/octet-stream\n\nAAAA\n", 554},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, sendOne(t, g.Addr, mail{From: "a@lab.example.org", To: to, Data: tt.data}), atDot, tt.code)
		})
	}
	if n := len(pages(t, f.in)); n != 0 {
		t.Errorf("%d pages", n)
	}
	// 8-bit headers in UTF-8 and in Latin-1 both page, as valid UTF-8.
	mustSend(t, g.Addr, mail{From: "a@lab.example.org", To: to, Data: "From: a@lab.example.org\nSubject: Blutdruck ↓ Zimmer 4\n\nText\n"})
	mustSend(t, g.Addr, mail{From: "a@lab.example.org", To: to, Data: "From: a@lab.example.org\nSubject: Fi\xe8vre chambre 9\n\nTexte\n"})
	got := map[string]bool{}
	for _, p := range pages(t, f.in) {
		got[p.Summary] = true
	}
	if !got["Blutdruck ↓ Zimmer 4"] || !got["Fièvre chambre 9"] {
		t.Errorf("summaries = %v", got)
	}
}

func TestTooManyRecipients(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	g := startGateway(t, f.in, nil)
	c := dial(t, g.Addr, clientOpts{})
	defer c.Quit()
	if err := c.Mail("a@lab.example.org", nil); err != nil {
		t.Fatal(err)
	}
	accepted, refused := 0, 0
	for range 1000 {
		err := c.Rcpt("cardiology@"+testDomain, nil)
		switch {
		case err == nil:
			accepted++
		case smtpCode(err) == 452:
			refused++
		default:
			t.Fatalf("RCPT: %v", err)
		}
	}
	if accepted != mailgateway.DefaultMaxRecipients || refused != 1000-accepted {
		t.Fatalf("accepted %d, refused %d", accepted, refused)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write(mail{From: "a@lab.example.org", To: []string{"cardiology@" + testDomain}, Subject: "fan-out"}.bytes())
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	onePage(t, f.in)
}

func TestLoadTLSAndCredentials(t *testing.T) {
	t.Parallel()
	_, _, certPEM, keyPEM := selfSignedTLS(t)
	dir := t.TempDir()
	writeFile(t, dir+"/cert.pem", certPEM)
	writeFile(t, dir+"/key.pem", keyPEM)
	if _, err := mailgateway.LoadTLS(dir+"/cert.pem", dir+"/key.pem"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir+"/users", []byte("# internal senders\nlab:$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$a2V5\n\nmonitor:$2a$10$abcdefghijklmnopqrstuu\n"))
	creds, err := mailgateway.LoadCredentials(dir + "/users")
	if err != nil || len(creds) != 2 || creds[0].Username != "lab" || !strings.HasPrefix(creds[1].Hash, "$2a$") {
		t.Fatalf("credentials = %+v, %v", creds, err)
	}
	nets, err := mailgateway.ParseNetworks("10.0.0.0/8, 192.0.2.7 ,::1")
	if err != nil || len(nets) != 3 || nets[1].String() != "192.0.2.7/32" {
		t.Fatalf("networks = %v, %v", nets, err)
	}
	if _, err := mailgateway.ParseNetworks("10.0.0.0/33"); err == nil {
		t.Error("a bad CIDR parsed")
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	deps := mailgateway.Deps{Pages: f.in.Server.Pages, Users: f.in.Server.Auth, DB: f.in.DB.Pool}
	for _, tt := range []struct {
		cfg  mailgateway.Config
		want string
	}{
		{mailgateway.Config{}, "no domain"},
		{mailgateway.Config{Domains: []string{"a@b"}}, "not a domain"},
		{mailgateway.Config{Domains: []string{testDomain}, Credentials: []mailgateway.Credential{{Username: "u", Hash: "$argon2id$x"}}}, "need a TLS certificate"},
		{mailgateway.Config{Domains: []string{testDomain}, ReplySecret: []byte("short")}, "reply secret"},
		{mailgateway.Config{Domains: []string{testDomain}, AllowedSenders: []string{"lab"}}, "allowed sender"},
	} {
		if _, err := mailgateway.New(tt.cfg, deps); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want an error about %q", tt.cfg, err, tt.want)
		}
	}
	if _, err := mailgateway.New(mailgateway.Config{Domains: []string{testDomain}}, mailgateway.Deps{}); err == nil {
		t.Error("New without dependencies succeeded")
	}
}

package inbox_test

import (
	"bytes"
	"errors"
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/callroom/callroom/inbox"
)

// pngBytes is n bytes that start like a PNG.
func pngBytes(n int) []byte {
	b := make([]byte, n)
	copy(b, "\x89PNG\r\n\x1a\n")
	return b
}

func TestSniff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"png", pngBytes(64), "image/png"},
		{"jpeg", append([]byte{0xFF, 0xD8, 0xFF, 0xE0}, make([]byte, 60)...), "image/jpeg"},
		{"gif87a", []byte("GIF87a" + string(make([]byte, 40))), "image/gif"},
		{"gif89a", []byte("GIF89a" + string(make([]byte, 40))), "image/gif"},
		{"webp", []byte("RIFF\x24\x00\x00\x00WEBPVP8 " + string(make([]byte, 40))), "image/webp"},
		{"pdf", []byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"), "application/pdf"},
		{"text", []byte("hello, this is not an image"), ""},
		{"html", []byte("<html><script>alert(1)</script></html>"), ""},
		{"svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`), ""},
		{"exe", []byte("MZ\x90\x00\x03\x00\x00\x00"), ""},
		{"zip", []byte("PK\x03\x04\x14\x00"), ""},
		{"riff that is not webp", []byte("RIFF\x24\x00\x00\x00WAVEfmt " + string(make([]byte, 40))), ""},
		{"empty", nil, ""},
	} {
		got := inbox.Sniff(tc.b)
		if got != tc.want {
			t.Errorf("%s: sniffed %q, want %q", tc.name, got, tc.want)
		}
		// Agree with the standard library wherever we accept a type.
		if got != "" && http.DetectContentType(tc.b) != got {
			t.Errorf("%s: we say %q, http.DetectContentType says %q", tc.name, got, http.DetectContentType(tc.b))
		}
	}
}

func TestAttachments(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ana, ben, cat := e.user("Dr Ana", "physician"), e.user("Ben RN", "nurse"), e.user("Cat RN", "nurse")
	th := e.thread(ana, inbox.NewThread{Kind: inbox.Patient, PatientRef: "Patient/123", MemberIDs: ids(ben, cat)})

	// Rejected uploads write nothing.
	for _, tc := range []struct {
		name     string
		filename string
		content  []byte
		field    string
		tooLarge bool
	}{
		{"empty", "a.png", nil, "body", false},
		{"text named .png", "wound.png", []byte("just text, not a picture"), "body", false},
		{"html", "x.pdf", []byte("<html><body>hi</body></html>"), "body", false},
		{"one byte too many", "big.png", pngBytes(inbox.MaxAttachmentBytes + 1), "", true},
		{"control characters in the name", "a\nb.png", pngBytes(10), "filename", false},
	} {
		_, err := e.store.Upload(e.ctx, ana, th.ID, tc.filename, tc.content)
		if tc.tooLarge {
			if !errors.Is(err, inbox.ErrTooLarge) {
				t.Errorf("%s: %v, want ErrTooLarge", tc.name, err)
			}
			continue
		}
		invalid(t, tc.name, err, tc.field)
	}
	if n := e.count(`SELECT count(*) FROM attachments`); n != 0 {
		t.Fatalf("rejected uploads wrote %d attachments", n)
	}

	// The largest allowed; the type comes from the bytes, not the name.
	content := pngBytes(inbox.MaxAttachmentBytes)
	copy(content[100:], "wound photo, bed 12")
	a, err := e.store.Upload(e.ctx, ana, th.ID, `C:\scans\..\Jane Doe MRN0042.pdf`, content)
	if err != nil {
		t.Fatal(err)
	}
	if a.ContentType != "image/png" || a.Size != inbox.MaxAttachmentBytes || a.Filename != "Jane Doe MRN0042.pdf" {
		t.Errorf("uploaded %+v", a)
	}
	var stored, name []byte
	if err := e.db.Pool.QueryRow(e.ctx, `SELECT content, filename FROM attachments WHERE id = $1`, a.ID).Scan(&stored, &name); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored, []byte("wound photo")) || bytes.Contains(name, []byte("Jane Doe")) {
		t.Error("attachment bytes or name stored in the clear")
	}

	// Unsent, it is the uploader's alone.
	if _, _, err := e.store.Download(e.ctx, ben, th.ID, a.ID); err == nil {
		t.Error("ben downloaded ana's unsent upload")
	}
	_, err = e.store.Post(e.ctx, ben, th.ID, inbox.NewMessage{Text: "mine now", AttachmentIDs: []uuid.UUID{a.ID}})
	invalid(t, "sending someone else's upload", err, "attachment_ids.0")

	pdf, err := e.store.Upload(e.ctx, ana, th.ID, "", []byte("%PDF-1.4\nECG"))
	if err != nil || pdf.ContentType != "application/pdf" || pdf.Filename != "" {
		t.Fatalf("pdf: %+v %v", pdf, err)
	}
	m, err := e.store.Post(e.ctx, ana, th.ID, inbox.NewMessage{Text: "see photo and ECG", AttachmentIDs: []uuid.UUID{a.ID, pdf.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Attachments) != 2 || m.Attachments[0].ID != a.ID || m.Attachments[0].Filename != a.Filename ||
		m.Attachments[1].ID != pdf.ID || m.Attachments[1].ContentType != "application/pdf" {
		t.Errorf("message attachments %+v", m.Attachments)
	}
	_, err = e.store.Post(e.ctx, ana, th.ID, inbox.NewMessage{Text: "again", AttachmentIDs: []uuid.UUID{pdf.ID}})
	invalid(t, "sending an attachment twice", err, "attachment_ids.0")

	got, body, err := e.store.Download(e.ctx, ben, th.ID, a.ID)
	if err != nil || !bytes.Equal(body, content) || got.ContentType != "image/png" || got.Filename != "Jane Doe MRN0042.pdf" {
		t.Fatalf("ben's download: %+v, %d bytes, %v", got, len(body), err)
	}
	list, err := e.store.Attachments(e.ctx, cat, th.ID)
	if err != nil || len(list) != 2 {
		t.Errorf("cat lists %d attachments (%v), want 2", len(list), err)
	}

	// Recalled, the files go with the text.
	if _, err := e.store.Recall(e.ctx, ana, th.ID, m.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.store.Download(e.ctx, ben, th.ID, a.ID); err == nil {
		t.Error("downloaded an attachment of a recalled message")
	}
	if list, _ := e.store.Attachments(e.ctx, cat, th.ID); len(list) != 0 {
		t.Errorf("attachments of a recalled message listed: %+v", list)
	}
}

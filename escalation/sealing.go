package escalation

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/google/uuid"
)

// Sealer encrypts at rest; package keys' *Keyring is one. A page's summary
// and body are PHI (a nurse writes "chest pain, bed 12, Mr Smith"), so they
// are stored sealed, like message text.
type Sealer interface {
	Seal(ctx context.Context, plaintext, aad []byte) (blob []byte, keyID uuid.UUID, err error)
	Open(ctx context.Context, blob, aad []byte) ([]byte, error)
}

type pageText struct {
	Summary string `json:"s"`
	Body    string `json:"b,omitempty"`
}

// pageAAD binds a sealed text to its page: a blob copied to another page's
// row does not open.
func pageAAD(id uuid.UUID) []byte { return []byte("page:" + id.String()) }

func (s *Store) sealText(ctx context.Context, id uuid.UUID, summary, body string) ([]byte, uuid.UUID, error) {
	if s.Sealer == nil {
		return nil, uuid.Nil, errors.New("escalation: no sealer configured; page text must not be stored in the clear")
	}
	plain, err := json.Marshal(pageText{Summary: summary, Body: body})
	if err != nil {
		return nil, uuid.Nil, err
	}
	return s.Sealer.Seal(ctx, plain, pageAAD(id))
}

// openText fills p.Summary and p.Body from the sealed text, for answers that
// show them. Pages written before sealing keep their plain columns.
func (s *Store) openText(ctx context.Context, p *Page) error {
	if p.sealed == nil {
		return nil
	}
	if s.Sealer == nil {
		return errors.New("escalation: no sealer configured")
	}
	plain, err := s.Sealer.Open(ctx, p.sealed, pageAAD(p.ID))
	if err != nil {
		return err
	}
	var t pageText
	if err := json.Unmarshal(plain, &t); err != nil {
		return err
	}
	p.Summary, p.Body = t.Summary, t.Body
	return nil
}

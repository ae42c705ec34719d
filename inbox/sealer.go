package inbox

import (
	"context"
	"fmt"

	"github.com/google/uuid"
)

// Sealer encrypts at rest (implemented by package keys' *Keyring).
//
// Seal returns the blob to store and the id of the data key that sealed it,
// which the row records beside the blob (a column referencing data_keys), so
// a key in use cannot be deleted and an operator can find what a key
// protects. aad is authenticated but not stored: Open must be given the same
// aad, which names the row, so a blob copied onto another row fails to open.
type Sealer interface {
	Seal(ctx context.Context, plaintext, aad []byte) (blob []byte, keyID uuid.UUID, err error)
	Open(ctx context.Context, blob, aad []byte) ([]byte, error)
}

// messageAAD binds a message text blob to its message and version: an old
// version's blob written over the current one does not open as current.
func messageAAD(id uuid.UUID, version int) []byte {
	return fmt.Appendf(nil, "message:%s:%d", id, version)
}

func attachmentAAD(id uuid.UUID) []byte { return []byte("attachment:" + id.String()) }

func attachmentNameAAD(id uuid.UUID) []byte {
	return []byte("attachment:" + id.String() + ":filename")
}

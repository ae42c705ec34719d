package inbox_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
)

// testSealer is an AES-256-GCM Sealer with one key, standing in for package
// keys' Keyring. Blob: key id (16 bytes) | nonce (12) | ciphertext and tag.
type testSealer struct {
	keyID uuid.UUID
	aead  cipher.AEAD
}

// newTestSealer makes a sealer with a fresh random key and registers the
// key's id in data_keys, which the inbox's key_id columns reference. It is
// registered retired, so it never competes with a real keyring's active key.
func newTestSealer(t testing.TB, db *pgxpool.Pool) *testSealer {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	s := &testSealer{keyID: uuid.New(), aead: aead}
	wrapped := make([]byte, 61) // data_keys' CHECK wants a wrapped key's length; nothing unwraps it
	rand.Read(wrapped)
	if _, err := db.Exec(context.Background(), `INSERT INTO data_keys (id, master_key_id, wrapped, retired_at)
		VALUES ($1, 'inbox-test', $2, now())`, s.keyID, wrapped); err != nil {
		t.Fatalf("registering the test key: %v", err)
	}
	return s
}

func (s *testSealer) Seal(_ context.Context, plaintext, aad []byte) ([]byte, uuid.UUID, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, uuid.Nil, err
	}
	blob := make([]byte, 0, 16+len(nonce)+len(plaintext)+s.aead.Overhead())
	blob = append(blob, s.keyID[:]...)
	blob = append(blob, nonce...)
	return s.aead.Seal(blob, nonce, plaintext, aad), s.keyID, nil
}

var errTestOpen = errors.New("test sealer: blob does not open")

func (s *testSealer) Open(_ context.Context, blob, aad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(blob) < 16+n+s.aead.Overhead() || !bytes.Equal(blob[:16], s.keyID[:]) {
		return nil, errTestOpen
	}
	out, err := s.aead.Open(nil, blob[16:16+n], blob[16+n:], aad)
	if err != nil {
		return nil, errTestOpen
	}
	return out, nil
}

func TestTestSealerBindsAssociatedData(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	blob, id, err := e.sealer.Seal(e.ctx, []byte("K+ 6.8"), []byte("message:a:1"))
	if err != nil || id != e.sealer.keyID {
		t.Fatalf("seal: %v %v", id, err)
	}
	if bytes.Contains(blob, []byte("K+ 6.8")) {
		t.Fatal("the blob contains the plaintext")
	}
	if got, err := e.sealer.Open(e.ctx, blob, []byte("message:a:1")); err != nil || string(got) != "K+ 6.8" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := e.sealer.Open(e.ctx, blob, []byte("message:a:2")); err == nil {
		t.Fatal("opened with another row's associated data")
	}
}

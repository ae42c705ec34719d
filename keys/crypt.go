package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// Errors that callers may want to tell apart. The messages carry key ids and
// data key ids only.
var (
	// ErrDecrypt: the blob was altered, or it is being opened with
	// associated data other than it was sealed with (it belongs to another
	// row). Never retry; report the row as damaged.
	ErrDecrypt = errors.New("keys: sealed data does not authenticate (altered, or not sealed for this row)")
	// ErrMalformed: not something Seal produced (too short, unknown version).
	ErrMalformed = errors.New("keys: not a sealed blob")
	// ErrUnknownDataKey: the blob names a data key that is not in data_keys.
	ErrUnknownDataKey = errors.New("keys: unknown data key")
	// ErrMasterKeyMissing: a data key is wrapped by a master key this
	// instance does not hold; it needs the current key file.
	ErrMasterKeyMissing = errors.New("keys: master key not held")
	// ErrWrongMasterKey: the key held under a master key id does not unwrap
	// a data key wrapped under that id, so the key file has different
	// material under the same id than the instance that wrapped it.
	ErrWrongMasterKey = errors.New("keys: master key does not unwrap data key")
)

const (
	blobVersion    = 1
	wrapVersion    = 1
	nonceSize      = 12
	tagSize        = 16
	blobHeaderSize = 1 + 16 // version | data key id

	// Overhead is how many bytes Seal adds to the plaintext.
	Overhead = blobHeaderSize + nonceSize + tagSize

	wrappedSize = 1 + nonceSize + KeySize + tagSize // must match data_keys' CHECK
)

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// wrapAAD binds a wrapped data key to its id and to the master key id
// recorded beside it: a wrapped key moved to another row, or relabelled to
// another master key, does not unwrap.
func wrapAAD(dataKeyID uuid.UUID, masterKeyID string) []byte {
	aad := append([]byte("callroom data key v1\x00"), dataKeyID[:]...)
	return append(aad, masterKeyID...)
}

// wrap encrypts the data key dk under the master key held as masterKeyID.
func wrap(mk *MasterKeys, masterKeyID string, dataKeyID uuid.UUID, dk []byte) ([]byte, error) {
	aead, err := newGCM(mk.key(masterKeyID))
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+nonceSize, wrappedSize)
	out[0] = wrapVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, err
	}
	return aead.Seal(out, out[1:1+nonceSize], dk, wrapAAD(dataKeyID, masterKeyID)), nil
}

// unwrap decrypts a wrapped data key. Its errors say which master key is
// missing or wrong and which keys the instance has, which is what an
// operator needs to fix the key file.
func unwrap(mk *MasterKeys, masterKeyID string, dataKeyID uuid.UUID, wrapped []byte) ([]byte, error) {
	if !mk.Has(masterKeyID) {
		return nil, fmt.Errorf("%w: data key %s is wrapped by master key %q, and this instance holds only %s: install the current key file",
			ErrMasterKeyMissing, dataKeyID, masterKeyID, strings.Join(mk.ids, ", "))
	}
	if len(wrapped) != wrappedSize || wrapped[0] != wrapVersion {
		return nil, fmt.Errorf("%w: data key %s: wrapped form has an unknown version or size", ErrMalformed, dataKeyID)
	}
	aead, err := newGCM(mk.key(masterKeyID))
	if err != nil {
		return nil, err
	}
	dk, err := aead.Open(nil, wrapped[1:1+nonceSize], wrapped[1+nonceSize:], wrapAAD(dataKeyID, masterKeyID))
	if err != nil {
		return nil, fmt.Errorf("%w: master key %q does not unwrap data key %s: the key file holds different key material under that id than the instance that wrapped it",
			ErrWrongMasterKey, masterKeyID, dataKeyID)
	}
	return dk, nil
}

// newDataKey makes a random data key and wraps it under mk's current key.
func newDataKey(mk *MasterKeys) (id uuid.UUID, wrapped []byte, aead cipher.AEAD, err error) {
	id, err = uuid.NewRandom()
	if err != nil {
		return uuid.Nil, nil, nil, err
	}
	dk := make([]byte, KeySize)
	if _, err := rand.Read(dk); err != nil {
		return uuid.Nil, nil, nil, err
	}
	if wrapped, err = wrap(mk, mk.Current(), id, dk); err != nil {
		return uuid.Nil, nil, nil, err
	}
	aead, err = newGCM(dk)
	return id, wrapped, aead, err
}

// blobAAD is what GCM authenticates besides the ciphertext: the blob's
// header (so the version and key id cannot be swapped) and the caller's aad
// naming the row. The header has a fixed length, so the concatenation is
// unambiguous.
func blobAAD(header, aad []byte) []byte {
	out := make([]byte, 0, len(header)+len(aad))
	return append(append(out, header...), aad...)
}

func seal(aead cipher.AEAD, dataKeyID uuid.UUID, plaintext, aad []byte) ([]byte, error) {
	out := make([]byte, blobHeaderSize+nonceSize, Overhead+len(plaintext))
	out[0] = blobVersion
	copy(out[1:blobHeaderSize], dataKeyID[:])
	nonce := out[blobHeaderSize:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(out, nonce, plaintext, blobAAD(out[:blobHeaderSize], aad)), nil
}

// blobKeyID reads the data key id from a blob's header.
func blobKeyID(blob []byte) (uuid.UUID, error) {
	if len(blob) < Overhead {
		return uuid.Nil, fmt.Errorf("%w: %d bytes is shorter than the %d-byte minimum", ErrMalformed, len(blob), Overhead)
	}
	if blob[0] != blobVersion {
		return uuid.Nil, fmt.Errorf("%w: unknown version %d", ErrMalformed, blob[0])
	}
	return uuid.UUID(blob[1:blobHeaderSize]), nil
}

func open(aead cipher.AEAD, blob, aad []byte) ([]byte, error) {
	nonce := blob[blobHeaderSize : blobHeaderSize+nonceSize]
	pt, err := aead.Open(nil, nonce, blob[blobHeaderSize+nonceSize:], blobAAD(blob[:blobHeaderSize], aad))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

package keys

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/internal/pg"
)

// Keyring seals and opens data for one instance. It holds the data keys
// unwrapped in memory, so sealing and opening cost no database round trip
// once a key is known, and an instance keeps working through a master key
// rotation with the keys it already has. It is safe for concurrent use.
type Keyring struct {
	pool    *pgxpool.Pool
	mk      *MasterKeys
	log     *slog.Logger
	refresh time.Duration

	mu      sync.RWMutex
	aeads   map[uuid.UUID]cipher.AEAD // unwrapped data keys
	active  uuid.UUID
	checked time.Time // when active was last read from the database
}

// Option adjusts a Keyring.
type Option func(*Keyring)

// WithLogger reports problems the Keyring works around (it cannot unwrap a
// newly rotated data key, so it keeps sealing with the previous one).
func WithLogger(l *slog.Logger) Option { return func(k *Keyring) { k.log = l } }

// WithRefresh sets how often Seal checks whether another instance rotated
// the data key (default one minute). Until it notices, it seals with the
// previous key, which is harmless: retired keys still open.
func WithRefresh(d time.Duration) Option { return func(k *Keyring) { k.refresh = d } }

// NewKeyring loads the data keys it can unwrap with mk and the active data
// key, creating the first data key if there is none. It fails when the
// active data key is wrapped by a master key mk does not hold, or when a
// key id in mk holds other material than the one that wrapped a data key:
// both mean this instance has the wrong key file, which is better found at
// startup than when the first message is read.
//
// Data keys wrapped by a master key mk lacks are skipped (Open reports them
// when a blob needs one), so an instance still starts while a rotation is
// being rolled out.
func NewKeyring(ctx context.Context, pool *pgxpool.Pool, mk *MasterKeys, opts ...Option) (*Keyring, error) {
	if mk == nil || len(mk.ids) == 0 {
		return nil, ErrNoMasterKey
	}
	k := &Keyring{pool: pool, mk: mk, refresh: time.Minute, aeads: map[uuid.UUID]cipher.AEAD{},
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, o := range opts {
		o(k)
	}
	rows, err := pool.Query(ctx, `SELECT id, master_key_id, wrapped, retired_at IS NULL FROM data_keys`)
	if err != nil {
		return nil, fmt.Errorf("keys: reading data keys: %w", err)
	}
	type row struct {
		id      uuid.UUID
		master  string
		wrapped []byte
		active  bool
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.id, &x.master, &x.wrapped, &x.active)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("keys: reading data keys: %w", err)
	}
	for _, r := range all {
		aead, err := unwrapAEAD(mk, r.master, r.id, r.wrapped)
		if err != nil {
			if errors.Is(err, ErrMasterKeyMissing) && !r.active {
				continue
			}
			return nil, err
		}
		k.aeads[r.id] = aead
		if r.active {
			k.active = r.id
		}
	}
	if k.active == uuid.Nil {
		if err := k.createFirst(ctx); err != nil {
			return nil, err
		}
	}
	k.checked = time.Now()
	return k, nil
}

func unwrapAEAD(mk *MasterKeys, master string, id uuid.UUID, wrapped []byte) (cipher.AEAD, error) {
	dk, err := unwrap(mk, master, id, wrapped)
	if err != nil {
		return nil, err
	}
	return newGCM(dk)
}

// createFirst makes the first data key. Several instances may start at once
// on an empty table; the table lock makes the second one find the first's
// key instead of failing on data_keys_one_active.
func (k *Keyring) createFirst(ctx context.Context) error {
	return pg.InTx(ctx, k.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `LOCK TABLE data_keys IN EXCLUSIVE MODE`); err != nil {
			return fmt.Errorf("keys: %w", err)
		}
		var (
			id      uuid.UUID
			master  string
			wrapped []byte
		)
		err := tx.QueryRow(ctx, `SELECT id, master_key_id, wrapped FROM data_keys WHERE retired_at IS NULL`).Scan(&id, &master, &wrapped)
		if err == nil {
			aead, err := unwrapAEAD(k.mk, master, id, wrapped)
			if err != nil {
				return err
			}
			k.aeads[id], k.active = aead, id
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("keys: %w", err)
		}
		id, aead, err := insertDataKey(ctx, tx, k.mk, "data_key.create")
		if err != nil {
			return err
		}
		k.aeads[id], k.active = aead, id
		return nil
	})
}

func insertDataKey(ctx context.Context, tx pgx.Tx, mk *MasterKeys, action string) (uuid.UUID, cipher.AEAD, error) {
	id, wrapped, aead, err := newDataKey(mk)
	if err != nil {
		return uuid.Nil, nil, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO data_keys (id, master_key_id, wrapped) VALUES ($1, $2, $3)`,
		id, mk.Current(), wrapped); err != nil {
		return uuid.Nil, nil, fmt.Errorf("keys: storing data key: %w", err)
	}
	err = audit.Record(ctx, tx, audit.System, audit.Entry{Action: action, ObjectType: "data_key", ObjectID: id.String(),
		Details: map[string]any{"master_key_id": mk.Current()}})
	return id, aead, err
}

// Seal encrypts plaintext under the active data key. aad must name the row
// the blob is stored in (e.g. "message:<id>:<version>"), and the same aad
// must be given to Open; it is not stored in the blob. The caller stores
// keyID beside the blob, in a column referencing data_keys(id).
func (k *Keyring) Seal(ctx context.Context, plaintext, aad []byte) (blob []byte, keyID uuid.UUID, err error) {
	if len(aad) == 0 {
		// Without aad a blob could be moved to another patient's row and still open.
		return nil, uuid.Nil, errors.New("keys: Seal needs aad naming the row the blob is stored in")
	}
	keyID, aead := k.activeKey(ctx)
	blob, err = seal(aead, keyID, plaintext, aad)
	if err != nil {
		return nil, uuid.Nil, err
	}
	return blob, keyID, nil
}

// Open decrypts a blob made by Seal with the same aad. The data key is
// found from the blob; a key this instance has not seen (another instance
// rotated it in) is read and unwrapped on demand.
func (k *Keyring) Open(ctx context.Context, blob, aad []byte) ([]byte, error) {
	id, err := blobKeyID(blob)
	if err != nil {
		return nil, err
	}
	aead, err := k.dataKey(ctx, id)
	if err != nil {
		return nil, err
	}
	pt, err := open(aead, blob, aad)
	if err != nil {
		return nil, fmt.Errorf("%w (data key %s)", err, id)
	}
	return pt, nil
}

func (k *Keyring) dataKey(ctx context.Context, id uuid.UUID) (cipher.AEAD, error) {
	k.mu.RLock()
	aead := k.aeads[id]
	k.mu.RUnlock()
	if aead != nil {
		return aead, nil
	}
	var (
		master  string
		wrapped []byte
	)
	err := k.pool.QueryRow(ctx, `SELECT master_key_id, wrapped FROM data_keys WHERE id = $1`, id).Scan(&master, &wrapped)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w %s", ErrUnknownDataKey, id)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: reading data key %s: %w", id, err)
	}
	aead, err = unwrapAEAD(k.mk, master, id, wrapped)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.aeads[id] = aead
	k.mu.Unlock()
	return aead, nil
}

// activeKey returns the data key to seal with, looking at most once per
// refresh interval whether another instance has rotated in a new one.
// Failing to look, or to unwrap the new key, is not an error: the key held
// is still a valid key to seal with, and refusing to store a page because
// of a key rotation would be worse.
func (k *Keyring) activeKey(ctx context.Context) (uuid.UUID, cipher.AEAD) {
	k.mu.RLock()
	id, aead, fresh := k.active, k.aeads[k.active], time.Since(k.checked) < k.refresh
	k.mu.RUnlock()
	if fresh {
		return id, aead
	}
	k.mu.Lock()
	k.checked = time.Now() // one refresh per interval even when it fails
	k.mu.Unlock()

	var cur uuid.UUID
	if err := k.pool.QueryRow(ctx, `SELECT id FROM data_keys WHERE retired_at IS NULL`).Scan(&cur); err != nil {
		k.log.Warn("keys: cannot check for a rotated data key; sealing with the previous one", "err", err.Error())
		return id, aead
	}
	if cur == id {
		return id, aead
	}
	newAEAD, err := k.dataKey(ctx, cur)
	if err != nil {
		k.log.Warn("keys: cannot use the rotated data key; sealing with the previous one", "data_key", cur.String(), "err", err.Error())
		return id, aead
	}
	k.mu.Lock()
	k.active = cur
	k.mu.Unlock()
	return cur, newAEAD
}

// ActiveKeyID is the data key Seal currently uses.
func (k *Keyring) ActiveKeyID() uuid.UUID {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.active
}

// RotateDataKey retires the active data key and makes a new one, wrapped by
// the current master key. Existing blobs keep opening with the retired key.
// Rotate data keys periodically so no key seals more than a few hundred
// million messages: GCM with random 96-bit nonces must stay well below 2^32
// messages per key.
func (k *Keyring) RotateDataKey(ctx context.Context) error {
	var (
		id   uuid.UUID
		aead cipher.AEAD
	)
	err := pg.InTx(ctx, k.pool, func(tx pgx.Tx) error {
		// Serialises concurrent rotations and first-key creation; readers
		// (Open, Seal's refresh) are not blocked.
		if _, err := tx.Exec(ctx, `LOCK TABLE data_keys IN EXCLUSIVE MODE`); err != nil {
			return fmt.Errorf("keys: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE data_keys SET retired_at = now() WHERE retired_at IS NULL`); err != nil {
			return fmt.Errorf("keys: retiring data key: %w", err)
		}
		var err error
		id, aead, err = insertDataKey(ctx, tx, k.mk, "data_key.rotate")
		return err
	})
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.aeads[id], k.active, k.checked = aead, id, time.Now()
	k.mu.Unlock()
	return nil
}

// String describes the keyring without key material.
func (k *Keyring) String() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return fmt.Sprintf("Keyring{active: %s, data keys: %d, %s}", k.active, len(k.aeads), k.mk)
}

// Format makes every verb print String, never the held keys.
func (k *Keyring) Format(f fmt.State, _ rune) { fmt.Fprint(f, k.String()) }

// KeyID returns the id of the data key a blob was sealed with, read from
// its header without decrypting: for checking the key id column stored
// beside a blob, or finding the rows a data key protects.
func KeyID(blob []byte) (uuid.UUID, error) { return blobKeyID(blob) }

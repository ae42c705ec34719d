package keys_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/internal/pgtest"
	"github.com/callroom/callroom/keys"
)

func newKeyring(t *testing.T, db *pgtest.DB, mk *keys.MasterKeys, opts ...keys.Option) *keys.Keyring {
	t.Helper()
	k, err := keys.NewKeyring(ctx, db.Pool, mk, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpenRoundTrip(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	k := newKeyring(t, db, load(t, keyFile(t, "a"), ""))
	aad := []byte("message:7f0c3a8e-0000-4000-8000-000000000001:1")
	for _, pt := range [][]byte{
		[]byte("Pt in bed 12 (MRN 00481516) K+ 6.8, please call back"),
		{},
		bytes.Repeat([]byte{0, 1, 2, 0xff}, 1<<16), // an attachment's worth of binary
	} {
		blob, keyID, err := k.Seal(ctx, pt, aad)
		if err != nil {
			t.Fatal(err)
		}
		if keyID != k.ActiveKeyID() || keyID == uuid.Nil {
			t.Fatalf("Seal reported key %s, active is %s", keyID, k.ActiveKeyID())
		}
		if id, err := keys.KeyID(blob); err != nil || id != keyID {
			t.Fatalf("KeyID(blob) = %s, %v; Seal said %s", id, err, keyID)
		}
		if len(blob) != len(pt)+keys.Overhead {
			t.Fatalf("blob is %d bytes for %d of plaintext, want overhead %d", len(blob), len(pt), keys.Overhead)
		}
		if len(pt) > 8 && bytes.Contains(blob, pt[:8]) {
			t.Fatal("blob contains the plaintext")
		}
		got, err := k.Open(ctx, blob, aad)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatalf("Open returned %d bytes, want the %d sealed", len(got), len(pt))
		}
	}
	// Sealing the same text twice gives different blobs (random nonces).
	b1, _, _ := k.Seal(ctx, []byte("same"), aad)
	b2, _, _ := k.Seal(ctx, []byte("same"), aad)
	if bytes.Equal(b1, b2) {
		t.Fatal("two seals of the same plaintext are identical")
	}
	if _, _, err := k.Seal(ctx, []byte("x"), nil); err == nil {
		t.Fatal("Seal without aad succeeded; a blob must be bound to its row")
	}
	// The first data key was made, and audited, once.
	var n int
	if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM data_keys").Scan(&n); err != nil || n != 1 {
		t.Fatalf("data_keys has %d rows (%v), want 1", n, err)
	}
	ev, err := audit.List(ctx, db.Pool, audit.Filter{Action: "data_key.create"})
	if err != nil || len(ev) != 1 || ev[0].ObjectID != k.ActiveKeyID().String() {
		t.Fatalf("audit of data key creation: %+v, %v", ev, err)
	}
}

func TestOpenWithOtherAADFails(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	k := newKeyring(t, db, load(t, keyFile(t, "a"), ""))
	blob, _, err := k.Seal(ctx, []byte("for patient A only"), []byte("message:1:1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, aad := range []string{"message:2:1", "message:1:2", "message:1:1 ", "attachment:1:1"} {
		if _, err := k.Open(ctx, blob, []byte(aad)); !errors.Is(err, keys.ErrDecrypt) {
			t.Errorf("Open with aad %q: %v, want ErrDecrypt", aad, err)
		}
	}
	if _, err := k.Open(ctx, blob, nil); !errors.Is(err, keys.ErrDecrypt) {
		t.Errorf("Open without aad: %v, want ErrDecrypt", err)
	}
}

func TestTamperedBlobFails(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	k := newKeyring(t, db, load(t, keyFile(t, "a"), ""))
	aad := []byte("message:1:1")
	blob, _, err := k.Seal(ctx, []byte("Transfuse 2 units O-neg"), aad)
	if err != nil {
		t.Fatal(err)
	}
	// Every single-bit change, in the version, key id, nonce, ciphertext or
	// tag, must be refused.
	for i := range blob {
		for bit := 0; bit < 8; bit++ {
			bad := bytes.Clone(blob)
			bad[i] ^= 1 << bit
			pt, err := k.Open(ctx, bad, aad)
			if err == nil {
				t.Fatalf("byte %d bit %d flipped: opened as %q", i, bit, pt)
			}
			want := keys.ErrDecrypt
			switch {
			case i == 0:
				want = keys.ErrMalformed
			case i <= 16:
				want = keys.ErrUnknownDataKey
			}
			if !errors.Is(err, want) {
				t.Fatalf("byte %d flipped: %v, want %v", i, err, want)
			}
		}
	}
	for _, n := range []int{0, 1, keys.Overhead - 1} {
		if _, err := k.Open(ctx, blob[:n], aad); !errors.Is(err, keys.ErrMalformed) {
			t.Errorf("truncated to %d bytes: %v, want ErrMalformed", n, err)
		}
	}
	if _, err := k.Open(ctx, blob[:len(blob)-1], aad); !errors.Is(err, keys.ErrDecrypt) {
		t.Errorf("last byte cut: %v, want ErrDecrypt", err)
	}
	if _, err := k.Open(ctx, append(bytes.Clone(blob), 0), aad); !errors.Is(err, keys.ErrDecrypt) {
		t.Errorf("byte appended: %v, want ErrDecrypt", err)
	}
}

func TestAnotherInstanceOpensAndFollowsRotation(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	file := keyFile(t, "a")
	k1 := newKeyring(t, db, load(t, file, ""))
	aad := []byte("message:1:1")
	blob1, id1, err := k1.Seal(ctx, []byte("first"), aad)
	if err != nil {
		t.Fatal(err)
	}
	k2 := newKeyring(t, db, load(t, file, ""), keys.WithRefresh(0))
	if k2.ActiveKeyID() != id1 {
		t.Fatalf("second instance uses data key %s, first made %s", k2.ActiveKeyID(), id1)
	}
	if got, err := k2.Open(ctx, blob1, aad); err != nil || string(got) != "first" {
		t.Fatalf("second instance opens %q, %v", got, err)
	}

	// The first instance rotates the data key; the second has not seen the
	// new key and unwraps it on demand.
	if err := k1.RotateDataKey(ctx); err != nil {
		t.Fatal(err)
	}
	blob2, id2, err := k1.Seal(ctx, []byte("second"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if id2 == id1 {
		t.Fatal("RotateDataKey did not change the key Seal uses")
	}
	if got, err := k2.Open(ctx, blob2, aad); err != nil || string(got) != "second" {
		t.Fatalf("second instance opens the rotated key's blob: %q, %v", got, err)
	}
	// And notices the rotation when it next seals (refresh 0: at once).
	if _, id, err := k2.Seal(ctx, []byte("third"), aad); err != nil || id != id2 {
		t.Fatalf("second instance seals with %s (%v), want the rotated key %s", id, err, id2)
	}
	// The retired key still opens.
	if got, err := k1.Open(ctx, blob1, aad); err != nil || string(got) != "first" {
		t.Fatalf("retired key: %q, %v", got, err)
	}
	var active int
	if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM data_keys WHERE retired_at IS NULL").Scan(&active); err != nil || active != 1 {
		t.Fatalf("%d active data keys (%v), want 1", active, err)
	}
}

func TestInstancesStartingTogetherShareOneDataKey(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	file := keyFile(t, "a")
	var wg sync.WaitGroup
	ids := make([]uuid.UUID, 8)
	errs := make([]error, 8)
	for i := range ids {
		wg.Go(func() {
			k, err := keys.NewKeyring(ctx, db.Pool, load(t, file, ""))
			if err != nil {
				errs[i] = err
				return
			}
			ids[i] = k.ActiveKeyID()
		})
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("instance %d uses data key %s, instance 0 %s", i, ids[i], ids[0])
		}
	}
}

func TestConcurrentRotationsLeaveOneActiveKey(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	mk := load(t, keyFile(t, "a"), "")
	k := newKeyring(t, db, mk)
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for range 5 {
		wg.Go(func() { errs <- k.RotateDataKey(ctx) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var total, active int
	err := db.Pool.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE retired_at IS NULL) FROM data_keys").Scan(&total, &active)
	if err != nil || total != 6 || active != 1 {
		t.Fatalf("%d data keys, %d active (%v); want 6 and 1", total, active, err)
	}
}

func TestMasterKeyRotationAndRewrap(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	file := keyFile(t, "old")
	running := newKeyring(t, db, load(t, file, ""))
	aad := []byte("message:1:1")
	blobA, _, err := running.Seal(ctx, []byte("sealed under the first data key"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if err := running.RotateDataKey(ctx); err != nil {
		t.Fatal(err)
	}
	blobB, _, err := running.Seal(ctx, []byte("sealed under the second data key"), aad)
	if err != nil {
		t.Fatal(err)
	}

	// An instance with only the new key cannot start before the rewrap, and
	// says which key it lacks.
	if err := keys.AppendMasterKey(file, "new"); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.NewKeyring(ctx, db.Pool, onlyKey(t, file, "new")); !errors.Is(err, keys.ErrMasterKeyMissing) ||
		!strings.Contains(err.Error(), `"old"`) {
		t.Fatalf("new key only, before rewrap: %v", err)
	}

	both := load(t, file, "")
	if both.Current() != "new" {
		t.Fatalf("current key is %q after appending \"new\"", both.Current())
	}
	n, err := keys.Rewrap(ctx, db.Pool, both)
	if err != nil || n != 2 {
		t.Fatalf("Rewrap: %d, %v; want 2 data keys", n, err)
	}
	if n, err := keys.Rewrap(ctx, db.Pool, both); err != nil || n != 0 {
		t.Fatalf("second Rewrap: %d, %v; want 0 (idempotent)", n, err)
	}
	var notNew int
	if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM data_keys WHERE master_key_id <> 'new' OR rewrapped_at IS NULL").Scan(&notNew); err != nil || notNew != 0 {
		t.Fatalf("%d data keys not re-wrapped under \"new\" (%v)", notNew, err)
	}
	if ev, err := audit.List(ctx, db.Pool, audit.Filter{Action: "data_key.rewrap"}); err != nil || len(ev) != 2 ||
		ev[0].Details["to_master_key_id"] != "new" || ev[0].Details["from_master_key_id"] != "old" {
		t.Fatalf("rewrap audit: %+v, %v", ev, err)
	}

	// An instance with only the new key opens blobs sealed before.
	fresh := newKeyring(t, db, onlyKey(t, file, "new"))
	for _, c := range []struct {
		blob []byte
		want string
	}{{blobA, "sealed under the first data key"}, {blobB, "sealed under the second data key"}} {
		if got, err := fresh.Open(ctx, c.blob, aad); err != nil || string(got) != c.want {
			t.Fatalf("new key only: %q, %v", got, err)
		}
	}
	// The instance that kept running through the rotation still works.
	if got, err := running.Open(ctx, blobA, aad); err != nil || string(got) != "sealed under the first data key" {
		t.Fatalf("running instance after rewrap: %q, %v", got, err)
	}
	if _, _, err := running.Seal(ctx, []byte("still sealing"), aad); err != nil {
		t.Fatal(err)
	}

	// An instance with only the old key fails clearly: which key it lacks,
	// which it has, and what to do.
	_, err = keys.NewKeyring(ctx, db.Pool, onlyKey(t, file, "old"))
	if !errors.Is(err, keys.ErrMasterKeyMissing) {
		t.Fatalf("old key only, after rewrap: %v, want ErrMasterKeyMissing", err)
	}
	for _, want := range []string{`master key "new"`, "old", "key file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if err := keys.CheckMasterKeys(ctx, db.Pool, onlyKey(t, file, "old")); !errors.Is(err, keys.ErrMasterKeyMissing) {
		t.Errorf("CheckMasterKeys with the old key only: %v", err)
	}
	if err := keys.CheckMasterKeys(ctx, db.Pool, onlyKey(t, file, "new")); err != nil {
		t.Errorf("CheckMasterKeys with the new key: %v", err)
	}
	if _, err := keys.Rewrap(ctx, db.Pool, onlyKey(t, file, "old")); !errors.Is(err, keys.ErrMasterKeyMissing) {
		t.Errorf("Rewrap back to the old key without the new one: %v", err)
	}
	secrets := []string{}
	for _, b64 := range keyLines(t, file) {
		secrets = append(secrets, b64)
	}
	assertNoKeyMaterial(t, "error", err.Error(), secrets...)
}

func TestSameKeyIDWithOtherMaterialFails(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	newKeyring(t, db, load(t, keyFile(t, "prod-1"), ""))
	impostor := keyFile(t, "prod-1") // same id, new random key
	_, err := keys.NewKeyring(ctx, db.Pool, load(t, impostor, ""))
	if !errors.Is(err, keys.ErrWrongMasterKey) || !strings.Contains(err.Error(), `"prod-1"`) {
		t.Fatalf("same id, other key: %v, want ErrWrongMasterKey naming the id", err)
	}
	assertNoKeyMaterial(t, "error", err.Error(), keyLines(t, impostor)["prod-1"])
}

func TestFormattingNeverShowsKeys(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	file := keyFile(t, "a", "b")
	mk := load(t, file, "")
	k := newKeyring(t, db, mk)
	secrets := []string{keyLines(t, file)["a"], keyLines(t, file)["b"]}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T", "%p"} {
		for _, v := range []any{mk, *mk, k, []any{mk}, map[string]any{"k": mk}} {
			s := fmt.Sprintf(verb, v)
			assertNoKeyMaterial(t, "fmt "+verb, s, secrets...)
		}
	}
	if s := fmt.Sprint(mk); !strings.Contains(s, "a,b") || !strings.Contains(s, "current: b") {
		t.Errorf("MasterKeys prints %q; want its ids", s)
	}
}

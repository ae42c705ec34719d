// Package keys encrypts PHI at rest (message text, attachments) with
// envelope encryption, so that the database, its backups and its dumps hold
// nothing readable without a key that is kept elsewhere.
//
// There are two layers of keys:
//
//   - Data keys (random, 32 bytes) encrypt the data with AES-256-GCM in the
//     application. They live in the data_keys table, but only wrapped
//     (AES-256-GCM encrypted) by a master key. One data key is active at a
//     time; [Keyring.RotateDataKey] retires it and makes a new one. Retired
//     keys keep opening what they sealed.
//   - Master keys (32 bytes) only wrap data keys. They never go into the
//     database: each instance reads them from a key file or an environment
//     variable ([LoadMasterKeys]). Rotating a master key re-wraps the few data
//     keys ([Rewrap]) and re-encrypts no data.
//
// # Key file
//
// One master key a line, "<key-id> <base64 of 32 bytes>". Blank lines and
// lines starting with # are ignored. The last key is the current one: it
// wraps new data keys. Older keys are kept so that data keys still wrapped
// under them (by an instance that has not got the new file yet, or before
// [Rewrap] finished) can be unwrapped. Key ids are 1-64 of A-Z a-z 0-9 . _ -
// and name a key in the database (data_keys.master_key_id), so an id is never
// reused for different key material. The file should be readable by
// callroom's user only; 'callroom keys init' and 'callroom keys rotate' write
// it with mode 0600.
//
// Instead of a file, CALLROOM_MASTER_KEY may hold one key as
// "<key-id>:<base64>" or just "<base64>" (its id is then "env").
//
// # Sealed blobs
//
// [Keyring.Seal] returns
//
//	version (1 byte, 1) | data key id (16 bytes) | nonce (12 bytes) | ciphertext | GCM tag (16 bytes)
//
// so any instance can find the data key a blob needs. The caller passes
// associated data naming the row the blob belongs to (for example
// "message:<id>:<version>"): GCM authenticates it, so a blob copied into
// another row, or an old version of a row put back, fails to open instead of
// showing one patient's data under another's record. The caller also stores
// the data key id Seal returns in a column referencing data_keys(id), which
// keeps that key from being deleted and lets an operator find what a key
// protects.
//
// Errors never contain key material, and [MasterKeys] prints only key ids.
package keys

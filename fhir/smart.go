package fhir

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// SMART is SMART Backend Services authorization: callroom, a confidential
// client registered with the EHR by its public key, gets access tokens with
// the client_credentials grant and a signed JWT assertion
// (private_key_jwt), and reuses each token until shortly before it expires.
type SMART struct {
	ClientID string
	// Key signs assertions: an RSA key (RS384) or a P-384 EC key (ES384).
	Key   crypto.Signer
	KeyID string // kid of the key in the JWKS the EHR knows
	Scope string // e.g. "system/Encounter.read system/Communication.write"
	// TokenURL, when empty, is discovered from [base]/.well-known/smart-configuration.
	TokenURL string
}

// LoadSMARTKey reads a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
func LoadSMARTKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	var key any
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: not a signing key", path)
	}
	if _, err := assertionAlg(signer); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return signer, nil
}

func assertionAlg(k crypto.Signer) (string, error) {
	switch pk := k.Public().(type) {
	case *rsa.PublicKey:
		if pk.N.BitLen() < 2048 {
			return "", errors.New("an RSA key must have at least 2048 bits")
		}
		return "RS384", nil
	case *ecdsa.PublicKey:
		if pk.Curve.Params().BitSize != 384 {
			return "", errors.New("an EC key must be on P-384 (ES384)")
		}
		return "ES384", nil
	}
	return "", errors.New("the key must be RSA (RS384) or EC P-384 (ES384)")
}

// tokenSource hands out access tokens, cached until a minute before expiry.
type tokenSource struct {
	cfg  SMART
	base string
	http *http.Client

	mu      sync.Mutex
	token   string
	expires time.Time
	now     func() time.Time
}

// assertion signs the client assertion JWT for the token endpoint aud.
func (ts *tokenSource) assertion(aud string) (string, error) {
	alg, err := assertionAlg(ts.cfg.Key)
	if err != nil {
		return "", err
	}
	header := map[string]any{"alg": alg, "typ": "JWT"}
	if ts.cfg.KeyID != "" {
		header["kid"] = ts.cfg.KeyID
	}
	now := ts.now()
	claims := map[string]any{"iss": ts.cfg.ClientID, "sub": ts.cfg.ClientID, "aud": aud,
		"exp": now.Add(4 * time.Minute).Unix(), "iat": now.Unix(), "jti": uuid.NewString()}
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(header) + "." + enc(claims)
	sum := sha512.Sum384([]byte(signing))
	var sig []byte
	switch k := ts.cfg.Key.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
		if err != nil {
			return "", err
		}
		// JWS wants r and s as two 48-byte big-endian numbers, not ASN.1.
		sig = make([]byte, 96)
		r.FillBytes(sig[:48])
		s.FillBytes(sig[48:])
	default:
		if sig, err = ts.cfg.Key.Sign(rand.Reader, sum[:], crypto.SHA384); err != nil {
			return "", err
		}
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// Token returns a valid access token, fetching one when none is cached.
func (ts *tokenSource) Token(ctx context.Context) (string, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.token != "" && ts.now().Before(ts.expires) {
		return ts.token, nil
	}
	tokenURL := ts.cfg.TokenURL
	if tokenURL == "" {
		var err error
		if tokenURL, err = ts.discover(ctx); err != nil {
			return "", err
		}
		ts.cfg.TokenURL = tokenURL
	}
	jwt, err := ts.assertion(tokenURL)
	if err != nil {
		return "", err
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {jwt},
	}
	if ts.cfg.Scope != "" {
		form.Set("scope", ts.cfg.Scope)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := ts.http.Do(req)
	if err != nil {
		return "", &ServerError{Outcome: "token endpoint: " + err.Error()}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	json.Unmarshal(body, &tok) //nolint:errcheck
	if resp.StatusCode != http.StatusOK || tok.AccessToken == "" {
		return "", &ServerError{Status: resp.StatusCode, Outcome: "token endpoint refused: " + tok.Error + " " + tok.Description}
	}
	if !strings.EqualFold(tok.TokenType, "bearer") {
		return "", fmt.Errorf("token endpoint returned a %q token, want bearer", tok.TokenType)
	}
	life := time.Duration(tok.ExpiresIn) * time.Second
	if life <= 0 {
		life = 5 * time.Minute
	}
	// Renew a minute early (or at half life for short tokens).
	ts.token, ts.expires = tok.AccessToken, ts.now().Add(life-min(time.Minute, life/2))
	return ts.token, nil
}

// forget drops the cached token (the server refused it).
func (ts *tokenSource) forget(token string) {
	ts.mu.Lock()
	if ts.token == token {
		ts.token = ""
	}
	ts.mu.Unlock()
}

func (ts *tokenSource) discover(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.base+"/.well-known/smart-configuration", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := ts.http.Do(req)
	if err != nil {
		return "", &ServerError{Outcome: "SMART discovery: " + err.Error()}
	}
	defer resp.Body.Close()
	var conf struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&conf) != nil || conf.TokenEndpoint == "" {
		return "", &ServerError{Status: resp.StatusCode, Outcome: "SMART discovery: no token_endpoint in .well-known/smart-configuration"}
	}
	return conf.TokenEndpoint, nil
}

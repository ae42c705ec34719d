package fhir

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// fileConfig is the JSON configuration file (CALLROOM_FHIR_CONFIG). It holds
// secrets (subscription secrets, a bearer token, a private key path), so it
// is a file readable by callroom only, never flags or the database.
type fileConfig struct {
	BaseURL          string `json:"base_url"`
	BearerToken      string `json:"bearer_token"`
	Timeout          string `json:"timeout"`
	IdentifierSystem string `json:"identifier_system"`
	// SubscribeOnStart registers the subscriptions when serve starts.
	SubscribeOnStart bool `json:"subscribe_on_start"`
	DailyDigest      bool `json:"daily_digest"`
	WritingBatches   int  `json:"writing_batches"`
	// IdleWritingBatches: writing_batches while no pages are being sent.
	IdleWritingBatches int                `json:"writing_batches_idle"`
	Subscriptions      []fileSubscription `json:"subscriptions"`
	// SMART on FHIR EHR launch.
	Launch *struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
		Scope        string `json:"scope"`
	} `json:"launch"`
	// SMART Backend Services (instead of bearer_token).
	SMART *struct {
		ClientID       string `json:"client_id"`
		PrivateKeyFile string `json:"private_key_file"`
		KeyID          string `json:"key_id"`
		Scope          string `json:"scope"`
		TokenURL       string `json:"token_url"`
	} `json:"smart"`
}

type fileSubscription struct {
	Name         string `json:"name"`
	Flavor       Flavor `json:"flavor"`
	Criteria     string `json:"criteria"`
	Topic        string `json:"topic"`
	Content      string `json:"content"`
	Secret       string `json:"secret"`
	SecretHeader string `json:"secret_header"`
	Heartbeat    string `json:"heartbeat"`
	Interval     string `json:"interval"`
}

// LoadConfig reads a configuration file; endpoint (callroom's public URL)
// is where the EHR calls back. It says which setting is wrong.
func LoadConfig(path, endpoint string) (Config, bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, false, fmt.Errorf("fhir config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f fileConfig
	if err := dec.Decode(&f); err != nil {
		return Config{}, false, fmt.Errorf("fhir config %s: %w", path, err)
	}
	cfg := Config{BaseURL: f.BaseURL, BearerToken: f.BearerToken, Endpoint: endpoint, IdentifierSystem: f.IdentifierSystem,
		DailyDigest: f.DailyDigest, WritingBatches: f.WritingBatches, IdleWritingBatches: f.IdleWritingBatches}
	if f.SMART != nil {
		if f.BearerToken != "" {
			return Config{}, false, fmt.Errorf("fhir config %s: set bearer_token or smart, not both", path)
		}
		if f.SMART.ClientID == "" || f.SMART.PrivateKeyFile == "" {
			return Config{}, false, fmt.Errorf("fhir config %s: smart needs client_id and private_key_file", path)
		}
		key, err := LoadSMARTKey(f.SMART.PrivateKeyFile)
		if err != nil {
			return Config{}, false, fmt.Errorf("fhir config %s: smart key: %w", path, err)
		}
		cfg.SMART = &SMART{ClientID: f.SMART.ClientID, Key: key, KeyID: f.SMART.KeyID, Scope: f.SMART.Scope, TokenURL: f.SMART.TokenURL}
	}
	if f.Launch != nil {
		if f.Launch.ClientID == "" {
			return Config{}, false, fmt.Errorf("fhir config %s: launch needs client_id", path)
		}
		cfg.Launch = &Launch{ClientID: f.Launch.ClientID, ClientSecret: f.Launch.ClientSecret, Scope: f.Launch.Scope}
	}
	if f.Timeout != "" {
		if cfg.Timeout, err = time.ParseDuration(f.Timeout); err != nil || cfg.Timeout <= 0 {
			return Config{}, false, fmt.Errorf("fhir config %s: timeout %q: want a duration such as 10s", path, f.Timeout)
		}
	}
	for _, s := range f.Subscriptions {
		sub := Subscription{Name: s.Name, Flavor: s.Flavor, Criteria: s.Criteria, Topic: s.Topic, Content: s.Content,
			Secret: s.Secret, SecretHeader: s.SecretHeader}
		if s.Heartbeat != "" {
			if sub.Heartbeat, err = time.ParseDuration(s.Heartbeat); err != nil || sub.Heartbeat <= 0 {
				return Config{}, false, fmt.Errorf("fhir config %s: subscription %s: heartbeat %q: want a duration such as 60s", path, s.Name, s.Heartbeat)
			}
		}
		if s.Interval != "" {
			if sub.Interval, err = time.ParseDuration(s.Interval); err != nil || sub.Interval < time.Second {
				return Config{}, false, fmt.Errorf("fhir config %s: subscription %s: interval %q: want a duration of at least 1s", path, s.Name, s.Interval)
			}
		}
		cfg.Subscriptions = append(cfg.Subscriptions, sub)
	}
	if err := cfg.Check(); err != nil {
		return Config{}, false, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, f.SubscribeOnStart, nil
}

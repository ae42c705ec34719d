package fhir

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// Backport IG canonical URLs.
const (
	BackportProfile = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription"
	backportFilter  = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria"
	backportContent = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content"
	backportPeriod  = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period"
	medplumSecret   = "https://medplum.com/fhir/StructureDefinition/subscription-secret"
)

// HookURL is where sub's notifications are sent, under callroom's public URL.
func HookURL(endpoint string, sub Subscription) string {
	return strings.TrimRight(endpoint, "/") + "/fhir/hooks/" + sub.Name
}

// SubscriptionResource builds the R4 Subscription that makes the EHR call
// callroom back for sub, as JSON callroom writes itself (valid FHIR: one
// choice per [x], no empty elements).
func SubscriptionResource(sub Subscription, endpoint string) (map[string]any, error) {
	if err := sub.check(); err != nil {
		return nil, err
	}
	if sub.Flavor == Poll {
		return nil, fmt.Errorf("fhir subscription %s: a polled subscription is not registered on the EHR", sub.Name)
	}
	channel := map[string]any{"type": "rest-hook", "endpoint": HookURL(endpoint, sub)}
	header := sub.SecretHeader
	if header == "" {
		header = "X-Callroom-Secret"
	}
	r := map[string]any{
		"resourceType": "Subscription",
		"status":       "requested",
		"reason":       "callroom: patient threads follow encounters and care teams (" + sub.Name + ")",
		"criteria":     sub.Criteria,
		"channel":      channel,
	}
	switch sub.Flavor {
	case RestHookEmpty:
		channel["header"] = []any{header + ": " + sub.Secret}
	case RestHookPayload:
		channel["payload"] = "application/fhir+json"
		channel["header"] = []any{header + ": " + sub.Secret}
	case Medplum:
		// Medplum signs with the secret instead of sending it.
		r["status"] = "active"
		channel["payload"] = "application/fhir+json"
		r["extension"] = []any{map[string]any{"url": medplumSecret, "valueString": sub.Secret}}
	case Backport:
		content := sub.Content
		if content == "" {
			content = "id-only"
		}
		r["meta"] = map[string]any{"profile": []any{BackportProfile}}
		r["criteria"] = sub.Topic
		r["_criteria"] = map[string]any{"extension": []any{map[string]any{"url": backportFilter, "valueString": sub.Criteria}}}
		channel["payload"] = "application/fhir+json"
		channel["_payload"] = map[string]any{"extension": []any{map[string]any{"url": backportContent, "valueCode": content}}}
		channel["header"] = []any{header + ": " + sub.Secret}
		if sub.Heartbeat > 0 {
			channel["extension"] = []any{map[string]any{"url": backportPeriod, "valueUnsignedInt": int(sub.Heartbeat.Seconds())}}
		}
	}
	return r, nil
}

// Subscribe registers every configured subscription on the EHR; one already
// registered (same endpoint) is left as it is. It returns the Subscriptions'
// references.
func Subscribe(ctx context.Context, cfg Config) ([]string, error) {
	if cfg.Endpoint == "" {
		return nil, fmt.Errorf("fhir: callroom's public URL (the callback endpoint) is not configured")
	}
	c := NewClient(cfg)
	var refs []string
	for _, sub := range cfg.Subscriptions {
		if sub.Flavor == Poll {
			refs = append(refs, "(polled)")
			continue
		}
		r, err := SubscriptionResource(sub, cfg.Endpoint)
		if err != nil {
			return nil, err
		}
		body, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		id, err := c.Create(ctx, "Subscription", body, "url="+url.QueryEscape(HookURL(cfg.Endpoint, sub)))
		if err != nil {
			return nil, fmt.Errorf("registering subscription %s: %w", sub.Name, err)
		}
		refs = append(refs, "Subscription/"+id)
	}
	return refs, nil
}

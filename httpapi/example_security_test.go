package httpapi_test

import (
	"fmt"

	"github.com/callroom/callroom/httpapi"
)

// The EHR that embeds callroom is named in frame-ancestors; anything that is
// not an origin is refused, so no other directive can ride along.
func ExampleCheckFrameAncestors() {
	fmt.Println(httpapi.CheckFrameAncestors("https://ehr.example.org 'self'"))
	fmt.Println(httpapi.CheckFrameAncestors("https://ehr.example.org; script-src *"))
	// Output:
	// <nil>
	// frame ancestors: "https://ehr.example.org;" is not 'none', 'self' or an origin like https://ehr.example.org
}

// Load balancers are given as addresses or CIDR prefixes.
func ExampleParseTrustedProxies() {
	p, err := httpapi.ParseTrustedProxies("10.0.0.0/8, 192.0.2.1")
	fmt.Println(p, err)
	// Output:
	// [10.0.0.0/8 192.0.2.1/32] <nil>
}

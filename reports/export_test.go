package reports

// Queries are the report's statements, for EXPLAIN in the benchmark.
var Queries = []string{byServiceSQL, byPersonSQL, gapsSQL, byServiceHistogramSQL, byPersonHistogramSQL}

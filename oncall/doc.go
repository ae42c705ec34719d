// Package oncall answers "who is on call" for a schedule. It is pure
// computation: no database, no HTTP, no clock. Callers load a [Schedule],
// [Compile] it once, and ask the [Compiled] schedule as often as they like,
// from any number of goroutines.
//
// A schedule is made of three layers, evaluated in this order:
//
//  1. Rotations hand a shift from one participant to the next on the
//     schedule's wall clock (a 07:00 hand-off stays at 07:00 through
//     daylight saving changes, so a 12-hour shift may last 11 or 13 hours).
//  2. Rules restrict a rotation to weekly windows ("nights only"), or put a
//     user on call during windows ("Dr A covers weekdays 09:00-17:00").
//  3. Overrides add, remove or replace a user for an exact interval of time,
//     on top of whatever the first two layers computed.
//
// Wall clock times that do not exist (the spring-forward gap) mean the first
// instant after the gap; wall clock times that occur twice (the fall-back
// overlap) mean their first occurrence. See [Rotation] and [Window].
//
// Sets of users are always returned sorted by UUID (byte order, which is
// also the order of their canonical string form), so results are
// deterministic and comparable.
package oncall

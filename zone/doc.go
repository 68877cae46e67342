// Package zone will hold cross-zone replication: the change-log endpoint a
// remote zone pulls from, one puller per remote zone on each zone's leader,
// and the forwarding of lifecycle writes from a replica zone to the
// primary zone. Nothing is built here yet: today every key lives in the
// zone that created it, and requests naming replica zones are refused.
package zone

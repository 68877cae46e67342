// Package bench is Keyzone's HTTP load generator and the pieces of
// `keyzone bench` built on it: a closed-loop runner (a fixed number of
// workers, each on its own keep-alive connection, sending its next request
// when the last one is answered), the measurement of the server's CPU time
// from /proc over the measured window, the floor servers the figures are
// compared with, and the table and JSON the results are reported as.
//
// Every server measured runs in a process of its own, started by the
// bench: its CPU time per request is then read from /proc/<pid>/stat over
// the measured window, apart from the load generator's own. The floor is
// the same gin engine and global middleware as the API (api.NewRouter),
// serving a no-op JSON handler and a handler that decodes a JSON body and
// returns it, so that a ratio to the floor says what the key management
// work costs next to HTTP and JSON alone, on the same machine in the same
// run.
package bench

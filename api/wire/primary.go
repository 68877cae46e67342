package wire

// UpdatePrimaryRequest is the body of POST /v1/keys/{id}/update-primary:
// the replica zone to make the key's primary. Force hands the key over
// even when that zone has not applied the key's last change (the change is
// lost), and, sent to a node of that zone while the primary zone is
// unreachable, lets the zone take the key over alone.
type UpdatePrimaryRequest struct {
	PrimaryZone string `json:"primary_zone"`
	Force       bool   `json:"force,omitempty"`
}

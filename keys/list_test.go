package keys_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyzone/keyzone/fsm"
	"github.com/keyzone/keyzone/keys"
	"github.com/keyzone/keyzone/test/clustertest"
)

// TestService_ListPagination pages through an organization's keys with
// every filter and several page sizes, on the leader and (stale) on a
// follower: every matching key comes exactly once, in id order, and the
// last page carries no token.
func TestService_ListPagination(t *testing.T) {
	t.Parallel()
	c := clustertest.New(t, 3, clustertest.Options{})
	ctx := testCtx(t, 90*time.Second)
	s := svc(c, 0)
	const pager = "pager"
	var all []*fsm.Key
	var last uint64
	for i := range 23 {
		p := keys.CreateParams{Organization: pager, Name: []string{"alpha", "beta"}[i%2]}
		if i%3 == 0 {
			p.Tags = []string{"t1", fmt.Sprintf("n%d", i)}
		}
		k := mustCreate(t, ctx, svc(c, i%3), p)
		if i%4 == 0 {
			var err error
			if k, err = s.DisableKey(ctx, keys.KeyRef{Organization: pager, KeyID: k.ID}); err != nil {
				t.Fatal(err)
			}
		}
		last = max(last, k.Revision)
		all = append(all, k)
	}
	// Keys of another organization never show up.
	for range 3 {
		mustCreate(t, ctx, s, keys.CreateParams{Organization: "other-org", Name: "alpha", Tags: []string{"t1"}})
	}
	slices.SortFunc(all, func(a, b *fsm.Key) int { return strings.Compare(a.ID, b.ID) })
	waitApplied(t, c, last)

	filters := []keys.ListParams{
		{},
		{Name: "alpha"},
		{Tag: "t1"},
		{State: fsm.KeyStateDisabled},
		{State: fsm.KeyStateEnabled, Name: "beta"},
		{Name: "alpha", Tag: "t1", State: fsm.KeyStateDisabled},
		{Name: "nobody"},
		{Tag: "n9"},
		{State: fsm.KeyStatePendingDeletion},
	}
	for _, f := range filters {
		var want []string
		for _, k := range all {
			if (f.Name == "" || k.Name == f.Name) && (f.Tag == "" || slices.Contains(k.Tags, f.Tag)) &&
				(f.State == "" || k.State == f.State) {
				want = append(want, k.ID)
			}
		}
		for _, size := range []int{1, 2, 7, 0, 1000} {
			for _, stale := range []bool{false, true} {
				name := fmt.Sprintf("name=%q tag=%q state=%q size=%d stale=%v", f.Name, f.Tag, f.State, size, stale)
				node := 0
				if stale {
					node = 2 // a node that may be a follower: it applied everything above
				}
				got, pages := listAll(t, svc(c, node), keys.ListParams{
					Organization: pager, Name: f.Name, Tag: f.Tag, State: f.State, PageSize: size, Stale: stale,
				})
				if !slices.Equal(got, want) {
					t.Errorf("%s: got %d keys %v, want %d %v", name, len(got), got, len(want), want)
				}
				eff := size
				if eff == 0 {
					eff = 100
				}
				if wantPages := max(1, (len(want)+eff-1)/eff); pages != wantPages {
					t.Errorf("%s: got %d pages, want %d", name, pages, wantPages)
				}
			}
		}
	}
}

// listAll follows next-page tokens to the end and returns the ids seen
// and the number of pages.
func listAll(t *testing.T, s *keys.Service, p keys.ListParams) ([]string, int) {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	var ids []string
	for pages := 1; ; pages++ {
		res, err := s.ListKeys(ctx, p)
		if err != nil {
			t.Fatalf("list page %d: %v", pages, err)
		}
		size := p.PageSize
		if size == 0 {
			size = 100
		}
		if len(res.Keys) > size {
			t.Fatalf("page %d holds %d keys, page size %d", pages, len(res.Keys), size)
		}
		for _, k := range res.Keys {
			if k.Organization != p.Organization {
				t.Fatalf("listed key %s of organization %s", k.ID, k.Organization)
			}
			ids = append(ids, k.ID)
		}
		if res.NextPageToken == "" {
			return ids, pages
		}
		if len(res.Keys) == 0 {
			t.Fatalf("page %d is empty but has a next page token", pages)
		}
		if pages > 100 {
			t.Fatal("more than 100 pages")
		}
		p.PageToken = res.NextPageToken
	}
}

package protocol

import "testing"

func TestSourcesOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   Stats
		want Sources
		off  float64
	}{
		{"seeder only", Stats{BytesP2P: 1000, BytesSeeder: 1000}, Sources{Seeder: 1000}, 0},
		{"seeder over TURN", Stats{BytesTURN: 500, BytesSeeder: 500, BytesOrigin: 500}, Sources{Seeder: 500, Origin: 500, TURN: 500}, 0},
		{"mixed", Stats{BytesP2P: 600, BytesTURN: 200, BytesSeeder: 100, BytesEdge: 300, BytesOrigin: 200},
			Sources{Viewers: 400, Edges: 300, Seeder: 100, Origin: 200, TURN: 200}, 0.7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.st.validate(); err != nil {
				t.Fatal(err)
			}
			got := SourcesOf(tc.st)
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if off, ok := got.Offload(); !ok || off < tc.off-1e-9 || off > tc.off+1e-9 {
				t.Errorf("offload %v, want %v", off, tc.off)
			}
		})
	}
	for _, bad := range []Stats{
		{BytesP2P: 10, BytesSeeder: 11},
		{BytesP2P: 10, BytesSeeder: 5, BytesEdge: 6},
		{BytesP2P: 1 << 63, BytesTURN: 1 << 63, BytesSeeder: 1},
	} {
		if bad.validate() == nil {
			t.Errorf("%+v validated", bad)
		}
	}
}

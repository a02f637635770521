package itinerary

// Catalog is the region catalog: every province-level division of China
// (Hong Kong, Macao and Taiwan included), every prefecture-level city, and
// every country by MCC. It is generated from ../shared/data by go generate and
// embedded, so it needs no files at run time.
//
// API contract (being implemented):
//
//	func NewCatalog() (*Catalog, error)            // parses the embedded data
//	func (c *Catalog) Lookup(r Region) (RegionInfo, bool)
//	func (c *Catalog) ParseRegion(s string) (Region, error) // "130100", "440"; returns the canonical code
//	func (c *Catalog) Regions(k Kind) []RegionInfo           // sorted by code
type Catalog struct {
	byCode map[Region]RegionInfo
}

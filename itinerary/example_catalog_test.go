package itinerary_test

import (
	"errors"
	"fmt"

	"github.com/roamtrail/roamtrail/itinerary"
)

func ExampleCatalog_Lookup() {
	c, err := itinerary.NewCatalog()
	if err != nil {
		panic(err)
	}
	city, _ := c.Lookup(130100)
	province, _ := c.Lookup(city.Province)
	fmt.Println(city.NameZH, city.NameEN, "in", province.NameZH, province.NameEN)

	country, _ := c.Lookup(440)
	fmt.Println(country.NameZH, country.NameEN, country.ISO)
	// Output:
	// 石家庄市 Shijiazhuang in 河北省 Hebei
	// 日本 Japan JP
}

func ExampleCatalog_ParseRegion() {
	c, err := itinerary.NewCatalog()
	if err != nil {
		panic(err)
	}
	// A phone roaming in Hong Kong reports MCC 454; it is stored under Hong
	// Kong's GB/T code like any other place in China.
	r, err := c.ParseRegion("454")
	fmt.Println(r, err)

	_, err = c.ParseRegion("13010")
	fmt.Println(errors.Is(err, itinerary.ErrBadRegion))
	_, err = c.ParseRegion("999999")
	fmt.Println(errors.Is(err, itinerary.ErrUnknownRegion))
	// Output:
	// 810000 <nil>
	// true
	// true
}

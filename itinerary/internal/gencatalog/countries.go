package main

// mccChoice settles an MCC that the data leaves open: one that several
// countries or territories share, or one whose country_code is not an ISO
// 3166-1 alpha-2 code. en and zh, when set, replace the names the rows and
// x/text would give.
type mccChoice struct {
	iso, en, zh string
}

// mccChoices picks one country per MCC. The catalog stores one place per
// code, so an MCC names the country ITU assigned it to, even where
// neighbouring territories' operators use it too.
var mccChoices = map[int]mccChoice{
	234: {iso: "GB"}, // the UK's; Guernsey, Jersey and the Isle of Man share it
	255: {iso: "UA"}, // Ukraine's; the Moldovan and Russian rows are operators in Transnistria and Luhansk
	270: {iso: "LU"}, // Luxembourg's; the Belgian rows are Luxembourg operators filed under BE
	310: {iso: "US"}, // 310-316 are the United States'; the others are US territories and Bermuda
	311: {iso: "US"},
	313: {iso: "US"},
	338: {iso: "JM"}, // Jamaica's; Digicel uses it across the Caribbean
	425: {iso: "IL"}, // Israel's; Palestinian operators use it too
	505: {iso: "AU"}, // Australia's, with its external territories

	// Abkhazia's operators use 289, which ITU never assigned; its country_code
	// GE-AB is an ISO 3166-2 subdivision, so the ISO column says Georgia.
	289: {iso: "GE", en: "Abkhazia", zh: "阿布哈兹"},
	// These three MCCs belong to groups of territories with no ISO code of
	// their own: the ISO column names the most populous, the names the group.
	340: {iso: "GP", en: "French Antilles", zh: "法属安的列斯"},
	362: {iso: "CW", en: "Netherlands Antilles", zh: "荷属安的列斯"},
	647: {iso: "RE", en: "Réunion"}, // Réunion and Mayotte; Mayotte is a tenth the size
}

// isoEN tidies English names that the data spells in full or in a form
// nobody uses in a text message.
var isoEN = map[string]string{
	"CD": "DR Congo",
	"CG": "Republic of the Congo", // plain "Congo" is ambiguous with CD
	"FM": "Micronesia",
	"RU": "Russia",
	"SH": "Saint Helena",
	"ST": "Sao Tome and Principe", // ã, é and í are not in the GSM alphabet
	"US": "United States",
}

// isoZH corrects Chinese names that x/text's CLDR data has out of date.
var isoZH = map[string]string{
	"MK": "北马其顿", // renamed in 2019; x/text still says 马其顿
}

// chinaMCCs are China's own MCCs. They are left out of the catalog: a phone
// in mainland China is reported by the GB/T 2260 code of its city, never by
// MCC, so a visit under 460 would say nothing about where the phone was.
var chinaMCCs = map[int]bool{460: true, 461: true}

// sarMCCs are the MCCs of Hong Kong, Macao and Taiwan. The catalog lists these
// places in China's part by GB/T code, so their MCCs are aliases of those
// codes: a visit is stored under one code however the network reported it.
var sarMCCs = map[int]int{
	454: 810000,
	455: 820000,
	466: 710000,
}

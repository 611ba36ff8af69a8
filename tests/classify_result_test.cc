#include "classify/classify_result.h"

#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace matid {
namespace {

using ::testing::HasSubstr;

std::vector<ClassifyResult> TwoResults() {
  ClassifyResult good;
  good.path = "parts/a,1.png";
  good.top = {{"Bag", 0.75f}, {"Coat", 0.25f}};
  good.latency_ms = 1.5;
  ClassifyResult bad;
  bad.path = "parts/b.png";
  bad.status_code = "INVALID_ARGUMENT";
  bad.error = "could not decode \"image\"\n";
  return {good, bad};
}

std::string Write(OutputFormat format) {
  std::ostringstream out;
  WriteResults(TwoResults(), format, out);
  return out.str();
}

TEST(ClassifyResult, CsvQuotesFieldsWithCommasAndQuotes) {
  EXPECT_EQ(Write(OutputFormat::kCsv),
            "path,status,top_label,top_score,latency_ms,top_k,error\n"
            "\"parts/a,1.png\",OK,Bag,0.750000,1.500,Bag:0.7500; Coat:0.2500,\n"
            "parts/b.png,INVALID_ARGUMENT,,,0.000,,\"could not decode \"\"image\"\"\n\"\n");
}

TEST(ClassifyResult, JsonLinesAreOneEscapedObjectPerImage) {
  EXPECT_EQ(
      Write(OutputFormat::kJsonLines),
      "{\"path\":\"parts/a,1.png\",\"status\":\"OK\",\"top_label\":\"Bag\",\"top_score\":0.750000,"
      "\"top_k\":[{\"label\":\"Bag\",\"score\":0.750000},{\"label\":\"Coat\",\"score\":0.250000}],"
      "\"latency_ms\":1.500}\n"
      "{\"path\":\"parts/b.png\",\"status\":\"INVALID_ARGUMENT\",\"top_k\":[],\"latency_ms\":0.000,"
      "\"error\":\"could not decode \\\"image\\\"\\n\"}\n");
}

TEST(ClassifyResult, TableShowsLabelOrReason) {
  const std::string table = Write(OutputFormat::kTable);
  EXPECT_THAT(table, HasSubstr("TOP LABEL"));
  EXPECT_THAT(table, HasSubstr("Bag"));
  EXPECT_THAT(table, HasSubstr("INVALID_ARGUMENT"));
}

TEST(ClassifyResult, JsonQuoteEscapesControlCharacters) {
  EXPECT_EQ(JsonQuote(std::string("a\x01\tb\\", 5)), "\"a\\u0001\\tb\\\\\"");
}

TEST(ClassifyResult, UnknownFormatIsRefused) {
  EXPECT_FALSE(ParseOutputFormat("xml").ok());
  EXPECT_TRUE(ParseOutputFormat("jsonl").ok());
}

}  // namespace
}  // namespace matid

#include "client/classify/classify_result.h"

#include <nlohmann/json.hpp>
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
  std::istringstream lines(Write(OutputFormat::kJsonLines));
  std::string text;
  std::vector<nlohmann::json> objects;
  while (std::getline(lines, text)) objects.push_back(nlohmann::json::parse(text));
  ASSERT_EQ(objects.size(), 2u);
  EXPECT_EQ(objects[0]["path"], "parts/a,1.png");
  EXPECT_EQ(objects[0]["top_label"], "Bag");
  EXPECT_DOUBLE_EQ(objects[0]["top_score"].get<double>(), 0.75);
  ASSERT_EQ(objects[0]["top_k"].size(), 2u);
  EXPECT_EQ(objects[0]["top_k"][1]["label"], "Coat");
  EXPECT_DOUBLE_EQ(objects[0]["latency_ms"].get<double>(), 1.5);
  EXPECT_FALSE(objects[0].contains("error"));
  EXPECT_EQ(objects[1]["status"], "INVALID_ARGUMENT");
  EXPECT_EQ(objects[1]["error"], "could not decode \"image\"\n");
  EXPECT_FALSE(objects[1].contains("top_label"));
}

TEST(ClassifyResult, JsonLinesStayValidForControlCharactersAndBadUtf8) {
  ClassifyResult odd;
  odd.path = std::string("a\x01\tb\\\xff.png", 10);
  odd.status_code = "OK";
  std::ostringstream out;
  WriteResults({odd}, OutputFormat::kJsonLines, out);
  const nlohmann::json parsed = nlohmann::json::parse(out.str());
  EXPECT_EQ(parsed["path"].get<std::string>(), "a\x01\tb\\\xEF\xBF\xBD.png");  // U+FFFD
}

TEST(ClassifyResult, TableShowsLabelOrReason) {
  const std::string table = Write(OutputFormat::kTable);
  EXPECT_THAT(table, HasSubstr("TOP LABEL"));
  EXPECT_THAT(table, HasSubstr("Bag"));
  EXPECT_THAT(table, HasSubstr("INVALID_ARGUMENT"));
}

TEST(ClassifyResult, UnknownFormatIsRefused) {
  EXPECT_FALSE(ParseOutputFormat("xml").ok());
  EXPECT_TRUE(ParseOutputFormat("jsonl").ok());
}

}  // namespace
}  // namespace matid

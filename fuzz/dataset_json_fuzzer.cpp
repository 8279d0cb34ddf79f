// dataset.json of a raw dataset folder (nnU-Net v2 or MSD / nnU-Net v1): the layout is detected from the file,
// then each reader is also forced, so both parse every input. The folder holds nothing else, so listed paths are
// missing files: problems in the result, never exceptions of another kind.
#include "fuzz_support.hpp"
#include "teachformer/data/dataset.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace teachformer;
  const auto path = fuzz::write_input("dataset/dataset.json", data, size);
  const auto root = path.parent_path();
  fuzz::expect_success_or_error("open_dataset", [&] { data::open_dataset(root); });
  fuzz::expect_success_or_error("open_dataset(nnunet)", [&] { data::open_dataset(root, data::DatasetFormat::NnUNet); });
  fuzz::expect_success_or_error("open_dataset(msd)", [&] { data::open_dataset(root, data::DatasetFormat::Msd); });
  return 0;
}

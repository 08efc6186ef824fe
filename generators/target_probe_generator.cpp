// Reports which compiled target a multi-target library dispatches to: instantiated with the same
// target list as the kernels, each variant writes its own target name, so the runtime learns the
// choice from the same dispatch mechanism the kernels use (iabn::kernel_target()).
#include "Halide.h"

namespace iabn_gen {
using namespace Halide;

class TargetProbe : public Generator<TargetProbe> {
public:
    Output<Buffer<uint8_t, 1>> name{"name"};  // NUL-terminated, NUL-padded

    void generate() {
        // Only the instruction-set part: features that say how the library was packaged are noise.
        Target t = get_target();
        for (Target::Feature f : {Target::NoRuntime, Target::LargeBuffers, Target::UserContext,
                                  Target::NoAsserts, Target::NoBoundsQuery}) {
            t = t.without_feature(f);
        }
        const std::string text = t.to_string();
        Var i("i");
        Expr ch = cast<uint8_t>(0);
        for (size_t k = text.size(); k-- > 0;) {
            ch = select(i == static_cast<int>(k), cast<uint8_t>(text[k]), ch);
        }
        name(i) = ch;
    }
};

}  // namespace iabn_gen

HALIDE_REGISTER_GENERATOR(iabn_gen::TargetProbe, iabn_target_probe)

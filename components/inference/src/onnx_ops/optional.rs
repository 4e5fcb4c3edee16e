//! `OptionalHasElement` / `OptionalGetElement` on what this engine can hold: a tensor (present,
//! and itself) or a missing input (absent). Exporters emit them around optional inputs; a graph
//! whose optional value is only known at run time still fails, as tract has no optional type.
use tract_hir::internal::*;
use tract_hir::ops::identity::Identity;
use tract_hir::ops::konst::Const;
use tract_onnx::model::OnnxOpRegister;

pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("OptionalHasElement", |_, node| {
        let given = node.input.first().is_some_and(|s| !s.is_empty());
        // A tensor input is always there; the input's absence is known from the graph.
        Ok((
            Box::new(Const::new(tensor0(given).into_arc_tensor())?),
            vec![],
        ))
    });
    reg.insert("OptionalGetElement", |_, _| {
        Ok((Box::<Identity>::default(), vec![]))
    });
}

//! Reads what the loader needs from the running kernel's BTF: struct field offsets, the
//! argument positions of BTF-typed tracepoints, and enum names. Nothing here is compiled in.

use std::path::Path;

use btf_rs::{Backend, Btf, Type};

use netprobe_common::layout::NO_ARG;

use crate::error::Error;

pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

pub struct KernelBtf {
    btf: Btf,
}

impl KernelBtf {
    pub fn from_sys() -> Result<Self, Error> {
        if !Path::new(VMLINUX).exists() {
            return Err(Error::NoBtf);
        }
        // Mapped, not parsed up front: a parsed vmlinux BTF is tens of MB. Kernels before
        // 6.16 cannot mmap it, and get the parse.
        let btf = Btf::from_file_with_backend(VMLINUX, Backend::Mmap)
            .or_else(|_| Btf::from_file(VMLINUX))
            .map_err(|e| Error::Btf(format!("{VMLINUX}: {e}")))?;
        Ok(Self { btf })
    }

    /// A loaded module's BTF (`/sys/kernel/btf/<module>`), split on top of vmlinux's: where
    /// its functions' prototypes are. None when the module is not loaded (or has no BTF).
    pub fn module(&self, module: &str) -> Option<Self> {
        let btf = Btf::from_split_file(format!("/sys/kernel/btf/{module}"), &self.btf).ok()?;
        Some(Self { btf })
    }

    #[cfg(test)]
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let btf = Btf::from_bytes(bytes).map_err(|e| Error::Btf(e.to_string()))?;
        Ok(Self { btf })
    }

    /// Whether the kernel has a function of this name that BPF trampolines can attach to.
    pub fn has_function(&self, name: &str) -> bool {
        self.btf
            .resolve_types_by_name(name)
            .is_ok_and(|types| types.iter().any(|t| matches!(t, Type::Func(_))))
    }

    /// Byte offset of `path` (e.g. `["__sk_common", "skc_net", "net"]`) inside `struct
    /// name`, looking through anonymous structs and unions on the way.
    pub fn offset_of(&self, name: &str, path: &[&str]) -> Result<u32, Error> {
        let missing = || Error::Layout(format!("struct {name} has no field {}", path.join(".")));
        let mut ty = self.named_struct(name).ok_or_else(missing)?;
        let mut total = 0;
        for (i, field) in path.iter().enumerate() {
            let (off, member_ty) = self.find_member(&ty, field).ok_or_else(missing)?;
            total += off;
            if i + 1 < path.len() {
                ty = self.skip_modifiers(member_ty).ok_or_else(missing)?;
            }
        }
        Ok(total)
    }

    /// Byte offset and shape of `path` inside `struct name`, for fields whose type differs
    /// between kernels.
    pub fn member(&self, name: &str, path: &[&str]) -> Result<(u32, Shape), Error> {
        let missing = || Error::Layout(format!("struct {name} has no field {}", path.join(".")));
        let mut ty = self.named_struct(name).ok_or_else(missing)?;
        let mut total = 0;
        for field in path {
            let (off, member_ty) = self.find_member(&ty, field).ok_or_else(missing)?;
            total += off;
            ty = self.skip_modifiers(member_ty).ok_or_else(missing)?;
        }
        let int_bytes = |t: Type| match self.skip_modifiers(t) {
            Some(Type::Int(i)) => Some(i.size() as u32),
            _ => None,
        };
        let shape = match ty {
            Type::Int(i) => Shape::Int { bytes: i.size() as u32 },
            Type::Array(ref a) => match self.btf.resolve_chained_type(a).ok().and_then(int_bytes) {
                Some(bytes) => Shape::IntArray { len: a.len() as u32, bytes },
                None => Shape::Other,
            },
            _ => Shape::Other,
        };
        Ok((total, shape))
    }

    /// Context offsets (8 bytes per argument) of the arguments of BTF-typed tracepoint `tp`
    /// whose types satisfy each predicate, in order. The first prototype parameter is the
    /// tracepoint's private `void *__data`, which programs do not see.
    pub fn tracepoint_args(&self, tp: &str, want: &[ArgKind]) -> Result<Vec<u32>, Error> {
        let typedef = format!("btf_trace_{tp}");
        let missing = |what: &str| Error::Layout(format!("tracepoint {tp}: {what}"));
        let proto = self
            .btf
            .resolve_types_by_name(&typedef)
            .ok()
            .and_then(|types| types.into_iter().next())
            .and_then(|t| self.skip_modifiers(t))
            .and_then(|t| match t {
                Type::Ptr(p) => self.btf.resolve_chained_type(&p).ok(),
                _ => None,
            })
            .and_then(|t| match t {
                Type::FuncProto(f) => Some(f),
                _ => None,
            })
            .ok_or_else(|| missing("no BTF prototype"))?;
        let params = proto.parameters.get(1..).unwrap_or_default();
        let slots = self.positions(params, want, missing)?;
        Ok(slots.into_iter().map(|i| i.map_or(NO_ARG, |i| (i * 8) as u32)).collect())
    }

    /// The 0-based positions of a kernel function's parameters, found by name or type as
    /// `want` says, and how many parameters it has (fexit finds the return value after the
    /// last). Prototypes change across versions (inet_csk_bind_conflict gained and lost
    /// arguments), so positions are never assumed. A function without a BTF entry is absent,
    /// renamed or inlined on this kernel.
    pub fn function_args(&self, function: &str, want: &[ArgKind]) -> Result<FunctionArgs, Error> {
        let missing = |what: &str| Error::Layout(format!("function {function}: {what}"));
        let proto = self
            .btf
            .resolve_types_by_name(function)
            .ok()
            .and_then(|types| {
                types.into_iter().find_map(|t| match t {
                    Type::Func(f) => self.btf.resolve_chained_type(&f).ok(),
                    _ => None,
                })
            })
            .and_then(|t| match t {
                Type::FuncProto(f) => Some(f),
                _ => None,
            })
            .ok_or_else(|| missing("not in the kernel's BTF (absent, renamed or inlined)"))?;
        let positions = self.positions(&proto.parameters, want, missing)?;
        Ok(FunctionArgs { positions, count: proto.parameters.len() })
    }

    /// Where each of `want` is among `params`: None for an optional argument not there.
    fn positions(
        &self,
        params: &[btf_rs::Parameter],
        want: &[ArgKind],
        missing: impl Fn(&str) -> Error,
    ) -> Result<Vec<Option<usize>>, Error> {
        let kinds: Vec<Option<(Kind, String)>> = params.iter().map(|p| self.arg_kind(p)).collect();
        let names: Vec<String> =
            params.iter().map(|p| self.btf.resolve_name(p).unwrap_or_default()).collect();
        want.iter()
            .map(|w| {
                let (w, optional) = match w {
                    ArgKind::Optional(inner) => (*inner, true),
                    w => (w, false),
                };
                let pos = match w {
                    // The n-th integer argument: integers are told apart only by order.
                    ArgKind::Int(n) => kinds
                        .iter()
                        .enumerate()
                        .filter(|(_, k)| k.as_ref().is_some_and(|(kind, _)| *kind == Kind::Int))
                        .nth(*n)
                        .map(|(i, _)| i),
                    ArgKind::Named(n) => names.iter().position(|name| name == n),
                    _ => kinds.iter().position(|k| k.as_ref().is_some_and(|k| arg_matches(k, w))),
                };
                match pos {
                    Some(i) => Ok(Some(i)),
                    None if optional => Ok(None),
                    None => Err(missing(&format!("no {w:?} argument"))),
                }
            })
            .collect()
    }

    /// The (name, value) pairs of `enum name`, or None when the kernel has no such enum.
    pub fn enum_values(&self, name: &str) -> Option<Vec<(String, u32)>> {
        let types = self.btf.resolve_types_by_name(name).ok()?;
        types.into_iter().find_map(|t| match t {
            Type::Enum(e) => Some(
                e.members
                    .iter()
                    .filter_map(|m| Some((self.btf.resolve_name(m).ok()?, m.val())))
                    .collect(),
            ),
            Type::Enum64(e) => Some(
                e.members
                    .iter()
                    .filter_map(|m| Some((self.btf.resolve_name(m).ok()?, m.val() as u32)))
                    .collect(),
            ),
            _ => None,
        })
    }

    fn named_struct(&self, name: &str) -> Option<Type> {
        let types = self.btf.resolve_types_by_name(name).ok()?;
        types.into_iter().find(|t| matches!(t, Type::Struct(_) | Type::Union(_)))
    }

    /// Follows typedefs and qualifiers to the underlying type.
    fn skip_modifiers(&self, mut ty: Type) -> Option<Type> {
        loop {
            ty = match ty {
                Type::Typedef(ref t) => self.btf.resolve_chained_type(t).ok()?,
                Type::Const(ref t) | Type::Volatile(ref t) | Type::Restrict(ref t) => {
                    self.btf.resolve_chained_type(t).ok()?
                }
                Type::TypeTag(ref t) => self.btf.resolve_chained_type(t).ok()?,
                other => return Some(other),
            }
        }
    }

    fn find_member(&self, ty: &Type, field: &str) -> Option<(u32, Type)> {
        let members = match ty {
            Type::Struct(s) | Type::Union(s) => &s.members,
            _ => return None,
        };
        for m in members {
            let name = self.btf.resolve_name(m).unwrap_or_default();
            let mty = self.btf.resolve_chained_type(m).ok()?;
            if m.bitfield_size().is_some_and(|b| b != 0) {
                continue;
            }
            let off = m.bit_offset() / 8;
            if name == field {
                return Some((off, mty));
            }
            if name.is_empty() {
                if let Some(inner) = self.skip_modifiers(mty) {
                    if let Some((o, t)) = self.find_member(&inner, field) {
                        return Some((off + o, t));
                    }
                }
            }
        }
        None
    }

    fn arg_kind(&self, p: &btf_rs::Parameter) -> Option<(Kind, String)> {
        let ty = self.skip_modifiers(self.btf.resolve_chained_type(p).ok()?)?;
        match ty {
            Type::Enum(ref e) => Some((Kind::Enum, self.btf.resolve_name(e).ok()?)),
            Type::Int(_) => Some((Kind::Int, String::new())),
            Type::Ptr(ref ptr) => {
                match self.skip_modifiers(self.btf.resolve_chained_type(ptr).ok()?) {
                    Some(Type::Void) => Some((Kind::VoidPtr, String::new())),
                    Some(Type::Struct(ref s)) => {
                        Some((Kind::StructPtr, self.btf.resolve_name(s).ok()?))
                    }
                    Some(_) | None => None,
                }
            }
            _ => None,
        }
    }

    /// The value of the enumerator `name`, in whichever anonymous enum holds it (the kernel
    /// declares TCP states that way).
    pub fn enumerator(&self, name: &str) -> Option<u32> {
        self.enum_of(name)?.into_iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Every (name, value) of the anonymous enum that holds the enumerator `member`.
    pub fn enum_of(&self, member: &str) -> Option<Vec<(String, u32)>> {
        // One type at a time: the kernel has tens of thousands of anonymous types, and
        // resolving them all at once is most of netprobe's peak memory.
        let ids = self.btf.resolve_ids_by_name("").ok()?;
        ids.into_iter().find_map(|id| match self.btf.resolve_type_by_id(id).ok()? {
            Type::Enum(e) => {
                let values: Vec<(String, u32)> = e
                    .members
                    .iter()
                    .filter_map(|m| Some((self.btf.resolve_name(m).ok()?, m.val())))
                    .collect();
                values.iter().any(|(n, _)| n == member).then_some(values)
            }
            _ => None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    StructPtr,
    VoidPtr,
    Enum,
    Int,
}

fn arg_matches(arg: &(Kind, String), want: &ArgKind) -> bool {
    let (kind, name) = arg;
    match want {
        ArgKind::StructPtr(n) => *kind == Kind::StructPtr && name == n,
        ArgKind::VoidPtr => *kind == Kind::VoidPtr,
        ArgKind::Enum(n) => *kind == Kind::Enum && name == n,
        ArgKind::Int(_) => *kind == Kind::Int,
        ArgKind::Named(_) => false,
        ArgKind::Optional(inner) => arg_matches(arg, inner),
    }
}

/// Where a kernel function's parameters are, from its BTF prototype.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionArgs {
    /// Of each parameter asked for, its 0-based position; None for an optional one not there.
    pub positions: Vec<Option<usize>>,
    /// How many parameters the function has.
    pub count: usize,
}

/// What a struct member is, as far as reading it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Int { bytes: u32 },
    IntArray { len: u32, bytes: u32 },
    Other,
}

/// What a tracepoint argument is, as told by its BTF type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    StructPtr(&'static str),
    VoidPtr,
    Enum(&'static str),
    /// The n-th integer argument (0-based).
    Int(usize),
    /// The parameter of this name: kernel functions' prototypes name their parameters
    /// (tracepoints' do not), and name is what tells `relax` from `reuseport_ok`.
    Named(&'static str),
    /// An argument some kernels do not have, in the BTF prototype and the format file alike
    /// (kfree_skb's reason, added in 5.17): there it resolves to `NO_ARG`, not an error.
    Optional(&'static ArgKind),
}

impl ArgKind {
    pub fn is_optional(self) -> bool {
        matches!(self, ArgKind::Optional(_))
    }
}

#[cfg(test)]
pub mod fixture;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_look_through_anonymous_unions() {
        let btf = KernelBtf::from_bytes(&fixture::blob()).unwrap();
        assert_eq!(btf.offset_of("sk_buff", &["dev"]).unwrap(), 8);
        assert_eq!(btf.offset_of("sk_buff", &["mark"]).unwrap(), 24);
        assert_eq!(btf.offset_of("net_device", &["nd_net", "net"]).unwrap(), 16);
    }

    #[test]
    fn missing_fields_are_errors_not_zeros() {
        let btf = KernelBtf::from_bytes(&fixture::blob()).unwrap();
        let err = btf.offset_of("sk_buff", &["nope"]).unwrap_err().to_string();
        assert!(err.contains("sk_buff has no field nope"), "{err}");
        assert!(btf.offset_of("no_such_struct", &["dev"]).is_err());
    }

    #[test]
    fn tracepoint_arguments_are_found_by_type() {
        let btf = KernelBtf::from_bytes(&fixture::blob()).unwrap();
        let offs = btf
            .tracepoint_args(
                "kfree_skb",
                &[
                    ArgKind::StructPtr("sk_buff"),
                    ArgKind::VoidPtr,
                    ArgKind::Enum("skb_drop_reason"),
                ],
            )
            .unwrap();
        // Prototype: (void *__data, struct sk_buff *, void *, enum skb_drop_reason).
        assert_eq!(offs, vec![0, 8, 16]);
        assert!(btf.tracepoint_args("nope", &[ArgKind::VoidPtr]).is_err());
    }

    #[test]
    fn a_missing_optional_argument_is_no_arg_not_an_error() {
        let btf = KernelBtf::from_bytes(&fixture::blob()).unwrap();
        // As on 5.10, whose kfree_skb has no reason: the fixture has no such enum argument.
        const ABSENT: ArgKind = ArgKind::Enum("no_such_enum");
        let offs = btf
            .tracepoint_args("kfree_skb", &[ArgKind::VoidPtr, ArgKind::Optional(&ABSENT)])
            .unwrap();
        assert_eq!(offs, vec![8, NO_ARG]);
        const PRESENT: ArgKind = ArgKind::Enum("skb_drop_reason");
        let offs = btf.tracepoint_args("kfree_skb", &[ArgKind::Optional(&PRESENT)]).unwrap();
        assert_eq!(offs, vec![16]);
        assert!(btf.tracepoint_args("kfree_skb", &[ABSENT]).is_err());
    }

    #[test]
    fn function_arguments_come_from_the_prototype_by_name_or_type() {
        let btf = KernelBtf::from_bytes(&fixture::blob()).unwrap();
        const ABSENT: ArgKind = ArgKind::Named("tb2");
        let args = btf
            .function_args(
                "bind_conflict",
                &[
                    ArgKind::Named("reuseport_ok"),
                    ArgKind::StructPtr("sk_buff"),
                    ArgKind::Named("relax"),
                    ArgKind::Optional(&ABSENT),
                ],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        // Two integers of one type: only their names tell them apart.
        assert_eq!(
            args,
            FunctionArgs { positions: vec![Some(3), Some(0), Some(2), None], count: 4 }
        );
        let e = btf.function_args("inlined_away", &[ArgKind::VoidPtr]).unwrap_err().to_string();
        assert!(e.contains("absent, renamed or inlined"), "{e}");
        let e = btf.function_args("bind_conflict", &[ABSENT]).unwrap_err().to_string();
        assert!(e.contains("no Named(\"tb2\") argument"), "{e}");
    }

    #[test]
    fn enums_are_read_with_their_names() {
        let btf = KernelBtf::from_bytes(&fixture::blob()).unwrap();
        let values = btf.enum_values("skb_drop_reason").unwrap();
        assert!(values.contains(&("SKB_DROP_REASON_NO_SOCKET".to_owned(), 3)));
        assert!(btf.enum_values("no_such_enum").is_none());
    }
}

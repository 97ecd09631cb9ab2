//! Just enough ELF reading to tell whether a binary is fully static, and for which machine.

use std::path::Path;

/// Program header type of the dynamic section.
pub const PT_DYNAMIC: u32 = 2;
/// Program header type of the dynamic loader request.
pub const PT_INTERP: u32 = 3;
/// `e_machine` of x86_64.
pub const EM_X86_64: u16 = 62;
/// `e_machine` of arm64.
pub const EM_AARCH64: u16 = 183;

/// The machine and the program header types of a 64-bit little-endian ELF file. Panics (in a
/// test) when the file is not one.
pub fn elf_info(path: &Path) -> (u16, Vec<u32>) {
    let data = std::fs::read(path).expect("UNWRAP: the binary is readable");
    assert_eq!(data.get(..4), Some(&b"\x7fELF"[..]), "not an ELF file");
    assert_eq!(data.get(4), Some(&2), "not a 64-bit ELF file");
    let bytes = |o: usize, n: usize| {
        data.get(o..o + n)
            .unwrap_or_else(|| panic!("{} is truncated", path.display()))
    };
    let u16_at = |o: usize| u16::from_le_bytes([bytes(o, 2)[0], bytes(o, 2)[1]]);
    let u32_at = |o: usize| {
        let b = bytes(o, 4);
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    };
    let u64_at = |o: usize| {
        let b = bytes(o, 8);
        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    };
    let machine = u16_at(18);
    let phoff = usize::try_from(u64_at(32)).expect("UNWRAP: offsets fit in usize");
    let phentsize = usize::from(u16_at(54));
    let phnum = usize::from(u16_at(56));
    let types = (0..phnum).map(|i| u32_at(phoff + i * phentsize)).collect();
    (machine, types)
}

/// True when the file neither asks for a dynamic loader nor has a dynamic section.
pub fn is_fully_static(path: &Path) -> bool {
    let (_, types) = elf_info(path);
    !types.contains(&PT_INTERP) && !types.contains(&PT_DYNAMIC)
}

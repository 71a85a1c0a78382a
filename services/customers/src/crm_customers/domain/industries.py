"""The normalised industry list a fresh database starts with (R-CUS-01). Administrators extend
it through the API; imports map free-text industry names onto these codes."""

DEFAULT_INDUSTRIES: tuple[tuple[str, str, str], ...] = (
    ("medical_devices", "Medical devices", "医疗器械"),
    ("pharmaceuticals", "Pharmaceuticals", "制药"),
    ("hospitals", "Hospitals and clinics", "医院与诊所"),
    ("diagnostics", "In-vitro diagnostics", "体外诊断"),
    ("biotech", "Biotechnology", "生物技术"),
    ("automotive", "Automotive", "汽车"),
    ("electronics", "Electronics", "电子"),
    ("machinery", "Industrial machinery", "机械设备"),
    ("chemicals", "Chemicals", "化工"),
    ("plastics", "Plastics and rubber", "塑料与橡胶"),
    ("metals", "Metals and metal processing", "金属加工"),
    ("textiles", "Textiles", "纺织"),
    ("packaging", "Packaging", "包装"),
    ("distribution", "Distribution and trading", "经销与贸易"),
    ("research", "Research institutes and universities", "科研院所与高校"),
    ("other", "Other", "其他"),
)

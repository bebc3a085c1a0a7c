//! The part of Microsoft Graph's beta metadata (CSDL, as published in microsoftgraph/
//! msgraph-metadata and documented per resource) that covers every type patchops sends, and a
//! check of request bodies against it, answering as Graph's OData layer does: an unknown
//! property, a value that is not a member of its enum (flags enums as comma-separated member
//! names), a wrong primitive type, or an abstract type without a concrete `@odata.type` is a
//! 400 naming the property and the type.

use serde_json::Value;

/// The kind of a property's value.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Edm.String (also DateTimeOffset and Binary, sent as strings).
    Str,
    /// Edm.Boolean.
    Bool,
    /// Edm.Int32 / Int64.
    Int,
    /// An enum type: (name, members).
    Enum(&'static str, &'static [&'static str]),
    /// A flags enum type: (name, members); sent as `"a,b"`.
    Flags(&'static str, &'static [&'static str]),
    /// A complex or entity type, by name (possibly abstract).
    Object(&'static str),
    /// A collection of strings.
    StrCollection,
    /// A collection of a complex or entity type.
    Collection(&'static str),
}

/// A type: (name, base type, abstract, properties).
struct Type {
    name: &'static str,
    base: Option<&'static str>,
    is_abstract: bool,
    properties: &'static [(&'static str, Kind)],
}

const RUN_AS: Kind = Kind::Enum("runAsAccountType", &["system", "user"]);
const RULE_TYPE: Kind = Kind::Enum("win32LobAppRuleType", &["detection", "requirement"]);
const RULE_OPERATOR: Kind = Kind::Enum(
    "win32LobAppRuleOperator",
    &["notConfigured", "equal", "notEqual", "greaterThan", "greaterThanOrEqual", "lessThan", "lessThanOrEqual"],
);
const ARCHITECTURE: Kind = Kind::Flags("windowsArchitecture", &["none", "x86", "x64", "arm", "neutral", "arm64"]);

#[rustfmt::skip]
const TYPES: &[Type] = &[
    Type { name: "mobileApp", base: None, is_abstract: true, properties: &[
        ("id", Kind::Str), ("displayName", Kind::Str), ("description", Kind::Str), ("publisher", Kind::Str),
        ("largeIcon", Kind::Object("mimeContent")), ("createdDateTime", Kind::Str), ("lastModifiedDateTime", Kind::Str),
        ("isFeatured", Kind::Bool), ("privacyInformationUrl", Kind::Str), ("informationUrl", Kind::Str),
        ("owner", Kind::Str), ("developer", Kind::Str), ("notes", Kind::Str), ("uploadState", Kind::Int),
        ("publishingState", Kind::Enum("mobileAppPublishingState", &["notPublished", "processing", "published"])),
        ("isAssigned", Kind::Bool), ("roleScopeTagIds", Kind::StrCollection), ("dependentAppCount", Kind::Int),
        ("supersedingAppCount", Kind::Int), ("supersededAppCount", Kind::Int),
    ]},
    Type { name: "mobileLobApp", base: Some("mobileApp"), is_abstract: true, properties: &[
        ("committedContentVersion", Kind::Str), ("fileName", Kind::Str), ("size", Kind::Int),
    ]},
    Type { name: "win32LobApp", base: Some("mobileLobApp"), is_abstract: false, properties: &[
        ("installCommandLine", Kind::Str), ("uninstallCommandLine", Kind::Str),
        ("applicableArchitectures", ARCHITECTURE), ("allowedArchitectures", ARCHITECTURE),
        ("minimumSupportedOperatingSystem", Kind::Object("windowsMinimumOperatingSystem")),
        ("minimumFreeDiskSpaceInMB", Kind::Int), ("minimumMemoryInMB", Kind::Int),
        ("minimumNumberOfProcessors", Kind::Int), ("minimumCpuSpeedInMHz", Kind::Int),
        ("detectionRules", Kind::Collection("win32LobAppDetection")),
        ("requirementRules", Kind::Collection("win32LobAppRequirement")),
        ("rules", Kind::Collection("win32LobAppRule")),
        ("installExperience", Kind::Object("win32LobAppInstallExperience")),
        ("returnCodes", Kind::Collection("win32LobAppReturnCode")),
        ("msiInformation", Kind::Object("win32LobAppMsiInformation")),
        ("setupFilePath", Kind::Str), ("minimumSupportedWindowsRelease", Kind::Str), ("displayVersion", Kind::Str),
        ("allowAvailableUninstall", Kind::Bool),
        ("activeInstallScript", Kind::Object("mobileAppScriptReference")),
        ("activeUninstallScript", Kind::Object("mobileAppScriptReference")),
    ]},
    Type { name: "windowsMinimumOperatingSystem", base: None, is_abstract: false, properties: &[
        ("v8_0", Kind::Bool), ("v8_1", Kind::Bool), ("v10_0", Kind::Bool), ("v10_1607", Kind::Bool),
        ("v10_1703", Kind::Bool), ("v10_1709", Kind::Bool), ("v10_1803", Kind::Bool), ("v10_1809", Kind::Bool),
        ("v10_1903", Kind::Bool), ("v10_1909", Kind::Bool), ("v10_2004", Kind::Bool), ("v10_2H20", Kind::Bool),
        ("v10_21H1", Kind::Bool),
    ]},
    Type { name: "mimeContent", base: None, is_abstract: false, properties: &[("type", Kind::Str), ("value", Kind::Str)] },
    Type { name: "mobileAppScriptReference", base: None, is_abstract: false, properties: &[("targetId", Kind::Str)] },
    Type { name: "win32LobAppDetection", base: None, is_abstract: true, properties: &[] },
    Type { name: "win32LobAppRequirement", base: None, is_abstract: true, properties: &[] },
    Type { name: "win32LobAppInstallExperience", base: None, is_abstract: false, properties: &[
        ("runAsAccount", RUN_AS), ("maxRunTimeInMinutes", Kind::Int),
        ("deviceRestartBehavior", Kind::Enum("win32LobAppRestartBehavior", &["basedOnReturnCode", "allow", "suppress", "force"])),
    ]},
    Type { name: "win32LobAppReturnCode", base: None, is_abstract: false, properties: &[
        ("returnCode", Kind::Int),
        ("type", Kind::Enum("win32LobAppReturnCodeType", &["failed", "success", "softReboot", "hardReboot", "retry"])),
    ]},
    Type { name: "win32LobAppMsiInformation", base: None, is_abstract: false, properties: &[
        ("productCode", Kind::Str), ("productVersion", Kind::Str), ("upgradeCode", Kind::Str), ("requiresReboot", Kind::Bool),
        ("packageType", Kind::Enum("win32LobAppMsiPackageType", &["perMachine", "perUser", "dualPurpose"])),
        ("productName", Kind::Str), ("publisher", Kind::Str),
    ]},
    Type { name: "win32LobAppRule", base: None, is_abstract: true, properties: &[("ruleType", RULE_TYPE)] },
    Type { name: "win32LobAppProductCodeRule", base: Some("win32LobAppRule"), is_abstract: false, properties: &[
        ("productCode", Kind::Str), ("productVersionOperator", RULE_OPERATOR), ("productVersion", Kind::Str),
    ]},
    Type { name: "win32LobAppPowerShellScriptRule", base: Some("win32LobAppRule"), is_abstract: false, properties: &[
        ("displayName", Kind::Str), ("enforceSignatureCheck", Kind::Bool), ("runAs32Bit", Kind::Bool),
        ("runAsAccount", RUN_AS), ("scriptContent", Kind::Str),
        ("operationType", Kind::Enum("win32LobAppPowerShellScriptRuleOperationType",
            &["notConfigured", "string", "dateTime", "integer", "float", "version", "boolean"])),
        ("operator", RULE_OPERATOR), ("comparisonValue", Kind::Str),
    ]},
    Type { name: "win32LobAppRegistryRule", base: Some("win32LobAppRule"), is_abstract: false, properties: &[
        ("check32BitOn64System", Kind::Bool), ("keyPath", Kind::Str), ("valueName", Kind::Str),
        ("operationType", Kind::Enum("win32LobAppRegistryRuleOperationType",
            &["notConfigured", "exists", "doesNotExist", "string", "integer", "version"])),
        ("operator", RULE_OPERATOR), ("comparisonValue", Kind::Str),
    ]},
    Type { name: "win32LobAppFileSystemRule", base: Some("win32LobAppRule"), is_abstract: false, properties: &[
        ("path", Kind::Str), ("fileOrFolderName", Kind::Str), ("check32BitOn64System", Kind::Bool),
        ("operationType", Kind::Enum("win32LobAppFileSystemOperationType",
            &["notConfigured", "exists", "modifiedDate", "createdDate", "version", "sizeInMB", "doesNotExist", "sizeInBytes", "appVersion"])),
        ("operator", RULE_OPERATOR), ("comparisonValue", Kind::Str),
    ]},
    Type { name: "mobileAppContentFile", base: None, is_abstract: false, properties: &[
        ("id", Kind::Str), ("azureStorageUri", Kind::Str), ("isCommitted", Kind::Bool), ("createdDateTime", Kind::Str),
        ("name", Kind::Str), ("size", Kind::Int), ("sizeEncrypted", Kind::Int), ("sizeInBytes", Kind::Int),
        ("sizeEncryptedInBytes", Kind::Int), ("azureStorageUriExpirationDateTime", Kind::Str), ("manifest", Kind::Str),
        ("uploadState", Kind::Str), ("isFrameworkFile", Kind::Bool), ("isDependency", Kind::Bool),
    ]},
    Type { name: "fileEncryptionInfo", base: None, is_abstract: false, properties: &[
        ("encryptionKey", Kind::Str), ("initializationVector", Kind::Str), ("mac", Kind::Str), ("macKey", Kind::Str),
        ("profileIdentifier", Kind::Str), ("fileDigest", Kind::Str), ("fileDigestAlgorithm", Kind::Str),
    ]},
    Type { name: "mobileAppAssignment", base: None, is_abstract: false, properties: &[
        ("id", Kind::Str),
        ("intent", Kind::Enum("installIntent", &["available", "required", "uninstall", "availableWithoutEnrollment"])),
        ("target", Kind::Object("deviceAndAppManagementAssignmentTarget")),
        ("settings", Kind::Object("mobileAppAssignmentSettings")),
        ("source", Kind::Enum("deviceAndAppManagementAssignmentSource", &["direct", "policySets"])),
        ("sourceId", Kind::Str),
    ]},
    Type { name: "deviceAndAppManagementAssignmentTarget", base: None, is_abstract: true, properties: &[
        ("deviceAndAppManagementAssignmentFilterId", Kind::Str),
        ("deviceAndAppManagementAssignmentFilterType",
            Kind::Enum("deviceAndAppManagementAssignmentFilterType", &["none", "include", "exclude"])),
    ]},
    Type { name: "groupAssignmentTarget", base: Some("deviceAndAppManagementAssignmentTarget"), is_abstract: false,
        properties: &[("groupId", Kind::Str)] },
    Type { name: "exclusionGroupAssignmentTarget", base: Some("groupAssignmentTarget"), is_abstract: false, properties: &[] },
    Type { name: "allLicensedUsersAssignmentTarget", base: Some("deviceAndAppManagementAssignmentTarget"), is_abstract: false, properties: &[] },
    Type { name: "allDevicesAssignmentTarget", base: Some("deviceAndAppManagementAssignmentTarget"), is_abstract: false, properties: &[] },
    Type { name: "mobileAppAssignmentSettings", base: None, is_abstract: true, properties: &[] },
    Type { name: "win32LobAppAssignmentSettings", base: Some("mobileAppAssignmentSettings"), is_abstract: false, properties: &[
        ("notifications", Kind::Enum("win32LobAppNotification", &["showAll", "showReboot", "hideAll"])),
        ("restartSettings", Kind::Object("win32LobAppRestartSettings")),
        ("installTimeSettings", Kind::Object("mobileAppInstallTimeSettings")),
        ("deliveryOptimizationPriority",
            Kind::Enum("win32LobAppDeliveryOptimizationPriority", &["notConfigured", "foreground"])),
        ("autoUpdateSettings", Kind::Object("win32LobAppAutoUpdateSettings")),
    ]},
    Type { name: "win32LobAppRestartSettings", base: None, is_abstract: false, properties: &[
        ("gracePeriodInMinutes", Kind::Int), ("countdownDisplayBeforeRestartInMinutes", Kind::Int),
        ("restartNotificationSnoozeDurationInMinutes", Kind::Int),
    ]},
    Type { name: "win32LobAppAutoUpdateSettings", base: None, is_abstract: false, properties: &[
        ("autoUpdateSupersededAppsState",
            Kind::Enum("win32LobAutoUpdateSupersededAppsState", &["notConfigured", "enabled", "unknownFutureValue"])),
    ]},
    Type { name: "mobileAppInstallTimeSettings", base: None, is_abstract: false, properties: &[
        ("useLocalTime", Kind::Bool), ("startDateTime", Kind::Str), ("deadlineDateTime", Kind::Str),
    ]},
    Type { name: "mobileAppRelationship", base: None, is_abstract: true, properties: &[
        ("id", Kind::Str), ("targetId", Kind::Str), ("targetDisplayName", Kind::Str), ("targetDisplayVersion", Kind::Str),
        ("targetPublisher", Kind::Str), ("targetPublisherDisplayName", Kind::Str), ("sourceId", Kind::Str),
        ("sourceDisplayName", Kind::Str), ("sourceDisplayVersion", Kind::Str), ("sourcePublisherDisplayName", Kind::Str),
        ("targetType", Kind::Enum("mobileAppRelationshipType", &["child", "parent", "unknownFutureValue"])),
    ]},
    Type { name: "mobileAppSupersedence", base: Some("mobileAppRelationship"), is_abstract: false, properties: &[
        ("supersedenceType", Kind::Enum("mobileAppSupersedenceType", &["update", "replace"])),
        ("supersededAppCount", Kind::Int), ("supersedingAppCount", Kind::Int),
    ]},
    Type { name: "mobileAppDependency", base: Some("mobileAppRelationship"), is_abstract: false, properties: &[
        ("dependencyType", Kind::Enum("mobileAppDependencyType", &["detect", "autoInstall"])),
        ("dependentAppCount", Kind::Int), ("dependsOnAppCount", Kind::Int),
    ]},
];

fn find(name: &str) -> Option<&'static Type> {
    TYPES.iter().find(|t| t.name == name)
}

/// Whether `ty` is `ancestor` or derives from it.
fn derives(ty: &Type, ancestor: &str) -> bool {
    let mut t = Some(ty);
    while let Some(x) = t {
        if x.name == ancestor {
            return true;
        }
        t = x.base.and_then(find);
    }
    false
}

fn property(ty: &Type, name: &str) -> Option<Kind> {
    let mut t = Some(ty);
    while let Some(x) = t {
        if let Some((_, k)) = x.properties.iter().find(|(n, _)| *n == name) {
            return Some(*k);
        }
        t = x.base.and_then(find);
    }
    None
}

/// Checks `value` as a `declared` (such as `win32LobApp`), as Graph reads a request body.
pub fn conform(value: &Value, declared: &str) -> Result<(), String> {
    conform_as(value, declared, false)
}

/// Checks a PATCH body: without `@odata.type` its properties are read against the declared
/// (possibly abstract) type of the resource.
pub fn conform_patch(value: &Value, declared: &str) -> Result<(), String> {
    conform_as(value, declared, true)
}

fn conform_as(value: &Value, declared: &str, patch: bool) -> Result<(), String> {
    let declared_ty = find(declared).ok_or_else(|| format!("the emulator does not know type '{declared}'"))?;
    let Some(object) = value.as_object() else {
        return Err(format!("A value of type 'microsoft.graph.{declared}' must be a JSON object."));
    };
    let ty = match object.get("@odata.type").and_then(Value::as_str) {
        Some(given) => {
            let name = given.trim_start_matches('#').trim_start_matches("microsoft.graph.");
            let ty = find(name).ok_or_else(|| format!("The type '{given}' is not a known type of microsoft.graph."))?;
            if !derives(ty, declared) {
                return Err(format!(
                    "The type 'microsoft.graph.{name}' is not compatible with the expected type 'microsoft.graph.{declared}'."
                ));
            }
            ty
        }
        None => declared_ty,
    };
    let untyped = object.get("@odata.type").is_none();
    if ty.is_abstract && !(patch && untyped) {
        return Err(format!(
            "Cannot create an instance of the abstract type 'microsoft.graph.{}': send a concrete '@odata.type'.",
            ty.name
        ));
    }
    for (name, v) in object {
        if name.starts_with('@') {
            continue;
        }
        let kind = property(ty, name).ok_or_else(|| {
            format!(
                "The property '{name}' does not exist on type 'microsoft.graph.{}'. Make sure to only use property names \
                 that are defined by the type or mark the type as open type.",
                ty.name
            )
        })?;
        check(v, kind, name)?;
    }
    Ok(())
}

fn check(v: &Value, kind: Kind, name: &str) -> Result<(), String> {
    if v.is_null() {
        return Ok(());
    }
    let wrong = |expected: &str| {
        format!("Cannot convert the value of property '{name}' ({v}) to the expected type '{expected}'.")
    };
    match kind {
        Kind::Str => v.is_string().then_some(()).ok_or_else(|| wrong("Edm.String")),
        Kind::Bool => v.is_boolean().then_some(()).ok_or_else(|| wrong("Edm.Boolean")),
        Kind::Int => v.is_i64().then_some(()).ok_or_else(|| wrong("Edm.Int64")),
        Kind::Enum(ty, members) => match v.as_str() {
            Some(s) if members.contains(&s) => Ok(()),
            _ => {
                Err(format!("Cannot convert the literal '{}' to the expected type 'microsoft.graph.{ty}'.", literal(v)))
            }
        },
        Kind::Flags(ty, members) => match v.as_str() {
            Some(s) if !s.is_empty() && s.split(',').all(|m| members.contains(&m.trim())) => Ok(()),
            _ => Err(format!(
                "Cannot convert the literal '{}' to the expected type 'microsoft.graph.{ty}': a flags enum is sent as \
                 comma-separated member names in one string.",
                literal(v)
            )),
        },
        Kind::Object(ty) => conform(v, ty),
        Kind::StrCollection => match v.as_array() {
            Some(items) if items.iter().all(Value::is_string) => Ok(()),
            _ => Err(wrong("Collection(Edm.String)")),
        },
        Kind::Collection(ty) => {
            let items = v.as_array().ok_or_else(|| wrong(&format!("Collection(microsoft.graph.{ty})")))?;
            items.iter().try_for_each(|item| conform(item, ty))
        }
    }
}

fn literal(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_declared_reference_names_a_known_type() {
        for t in TYPES {
            assert!(t.base.is_none_or(|b| find(b).is_some()), "{} has an unknown base", t.name);
            for (name, kind) in t.properties {
                if let Kind::Object(x) | Kind::Collection(x) = kind {
                    assert!(find(x).is_some(), "{}.{name} names unknown type {x}", t.name);
                }
            }
        }
    }

    #[test]
    fn bodies_are_judged_as_graph_reads_them() {
        let rule = json!({"@odata.type": "#microsoft.graph.win32LobAppProductCodeRule", "ruleType": "detection",
            "productCode": "{1}", "productVersionOperator": "greaterThanOrEqual", "productVersion": "1.0"});
        assert_eq!(conform(&rule, "win32LobAppRule"), Ok(()));
        let mut bad = rule.clone();
        bad["operator"] = json!("equal");
        assert!(conform(&bad, "win32LobAppRule")
            .unwrap_err()
            .contains("'operator' does not exist on type 'microsoft.graph.win32LobAppProductCodeRule'"));
        let mut untyped = rule.clone();
        untyped.as_object_mut().map(|o| o.remove("@odata.type"));
        assert!(conform(&untyped, "win32LobAppRule")
            .unwrap_err()
            .contains("abstract type 'microsoft.graph.win32LobAppRule'"));
        let mut member = rule;
        member["ruleType"] = json!("Detection");
        assert!(conform(&member, "win32LobAppRule").unwrap_err().contains("literal 'Detection'"));
        let app = json!({"@odata.type": "#microsoft.graph.win32LobApp", "applicableArchitectures": "x64,arm64"});
        assert_eq!(conform(&app, "win32LobApp"), Ok(()));
        let arr = json!({"@odata.type": "#microsoft.graph.win32LobApp", "applicableArchitectures": ["x64"]});
        assert!(conform(&arr, "win32LobApp").unwrap_err().contains("comma-separated"));
        let wrong_type = json!({"@odata.type": "#microsoft.graph.mobileAppDependency", "targetId": "x"});
        assert!(conform(&wrong_type, "win32LobAppRule").unwrap_err().contains("not compatible"));
    }
}

#!/usr/bin/env python3
"""Reads a DICOS Threat Detection Report with pydicom, an independent DICOM reader, and prints
what it says as JSON: `tests/dicos.rs` compares that with `tusk serve`'s JSON answer for the
same scan.

Usage: .venv/bin/python scripts/read_tdr.py REPORT.dcs
Needs: pip install pydicom==3.0.2 (scripts/setup-python.sh)."""
import json, sys

import pydicom


def text(ds, keyword):
    value = ds.get(keyword)
    return None if value is None else str(value)


def main():
    # A conformant Part-10 file: preamble, DICM, file meta group (no force=True).
    ds = pydicom.dcmread(sys.argv[1])
    threats = []
    for item in ds.get("ThreatSequence", []):
        assessment = item.ATDAssessmentSequence[0]
        representation = item.PTORepresentationSequence[0]
        polygon = [float(v) for v in representation.get("BoundingPolygon", [])]
        references = [
            {
                "sop_class_uid": str(r.ReferencedSOPClassUID),
                "sop_instance_uid": str(r.ReferencedSOPInstanceUID),
                "frame": int(r.ReferencedFrameNumber) if "ReferencedFrameNumber" in r else None,
            }
            for r in representation.get("ReferencedInstanceSequence", [])
        ]
        threats.append({
            "id": int(item.PotentialThreatObjectID),
            "category": str(assessment.ThreatCategory),
            "description": str(assessment.ThreatCategoryDescription),
            "flag": str(assessment.ATDAssessmentFlag),
            "ability": str(assessment.ATDAbilityAssessment),
            "probability": float(assessment.ATDAssessmentProbability),
            # Two (x, y, z) corners: top left, bottom right.
            "box": [polygon[0], polygon[1], polygon[3], polygon[4]] if len(polygon) >= 6 else None,
            "references": references,
        })
    algorithm = ds.get("ThreatDetectionAlgorithmAndVersion")
    report = {
        "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
        "media_storage_sop_class_uid": str(ds.file_meta.MediaStorageSOPClassUID),
        "sop_class_uid": str(ds.SOPClassUID),
        "sop_instance_uid": str(ds.SOPInstanceUID),
        "study_instance_uid": str(ds.StudyInstanceUID),
        "series_instance_uid": str(ds.SeriesInstanceUID),
        "modality": str(ds.Modality),
        "patient_id": text(ds, "PatientID"),
        "station_name": text(ds, "StationName"),
        "ooi_type": text(ds, "OOIType"),
        "tdr_type": str(ds.TDRType),
        "abort_flag": str(ds.AbortFlag),
        "alarm_decision": str(ds.AlarmDecision),
        "alarm_decision_time": str(ds.AlarmDecisionTime),
        "algorithm": [str(v) for v in (algorithm if isinstance(algorithm, pydicom.multival.MultiValue) else [algorithm])],
        "total_objects": int(ds.NumberOfTotalObjects),
        "alarm_objects": int(ds.NumberOfAlarmObjects),
        "threats": threats,
    }
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()

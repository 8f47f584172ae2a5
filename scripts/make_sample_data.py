#!/usr/bin/env python3
"""Writes the sample data the project ships, all invented (no real patient data):

  data/sample/notes/<id>.<lang>.txt   20 synthetic stroke discharge summaries per language (bg cs el en es pl ro)
  data/sample/notes/gold.jsonl        every note's gold answer per concept of configs/concepts-stroke.toml,
                                      with character offsets
  data/sample/qa/train.json, dev.json SQuAD v1.1 questions on the notes (notes 1-14 train, 15-20 dev), asked
                                      in the note's language and, for training, also in English

The notes are built from per-language sentence templates with seeded random values (scores, times,
measurements in each country's usual units and decimal separator, drugs under their local names), so
the same command always writes the same bytes. Run from anywhere: python3 scripts/make_sample_data.py
"""
import json
import random
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LANGS = ["bg", "cs", "el", "en", "es", "pl", "ro"]
PER_LANG = 20
TRAIN_NOTES = 14

# Values that differ only in wording: one list per language, the same meaning at the same index.
WORDS = {
    "sex": {
        "en": ["male", "female"], "es": ["varón", "mujer"], "ro": ["bărbat", "femeie"],
        "pl": ["mężczyzna", "kobieta"], "cs": ["muž", "žena"], "bg": ["мъж", "жена"], "el": ["άνδρας", "γυναίκα"]},
    "presenting_symptoms": {
        "en": ["right-sided weakness and slurred speech", "left facial droop and left arm weakness",
               "sudden loss of speech", "vertigo, double vision and unsteady gait"],
        "es": ["debilidad del hemicuerpo derecho y disartria", "desviación de la comisura bucal y debilidad del brazo izquierdo",
               "pérdida brusca del habla", "vértigo, diplopía y marcha inestable"],
        "ro": ["slăbiciune în hemicorpul drept și dizartrie", "pareză facială stângă și slăbiciune în brațul stâng",
               "pierderea bruscă a vorbirii", "vertij, diplopie și mers instabil"],
        "pl": ["niedowład prawostronny i zaburzenia mowy", "opadnięcie lewego kącika ust i osłabienie lewej ręki",
               "nagła utrata mowy", "zawroty głowy, podwójne widzenie i chwiejny chód"],
        "cs": ["pravostranná slabost a porucha řeči", "pokles levého koutku a slabost levé paže",
               "náhlá ztráta řeči", "závrať, dvojité vidění a nejistá chůze"],
        "bg": ["слабост в десните крайници и затруднен говор", "изкривяване на лицето вляво и слабост в лявата ръка",
               "внезапна загуба на говора", "световъртеж, двойно виждане и нестабилна походка"],
        "el": ["δεξιά ημιπάρεση και δυσαρθρία", "αριστερή προσωπική παράλυση και αδυναμία του αριστερού χεριού",
               "αιφνίδια απώλεια ομιλίας", "ίλιγγος, διπλωπία και αστάθεια βάδισης"]},
    "ct_result": {
        "en": ["no haemorrhage, early ischaemic changes", "no haemorrhage, ASPECTS 9",
               "no acute changes, old lacunar infarct"],
        "es": ["sin hemorragia, cambios isquémicos precoces", "sin hemorragia, ASPECTS 9",
               "sin cambios agudos, infarto lacunar antiguo"],
        "ro": ["fără hemoragie, modificări ischemice precoce", "fără hemoragie, ASPECTS 9",
               "fără modificări acute, infarct lacunar vechi"],
        "pl": ["bez krwawienia, wczesne zmiany niedokrwienne", "bez krwawienia, ASPECTS 9",
               "bez zmian ostrych, stary zawał zatokowy"],
        "cs": ["bez krvácení, časné ischemické změny", "bez krvácení, ASPECTS 9",
               "bez akutních změn, starý lakunární infarkt"],
        "bg": ["без кръвоизлив, ранни исхемични промени", "без кръвоизлив, ASPECTS 9",
               "без остри промени, стар лакунарен инфаркт"],
        "el": ["χωρίς αιμορραγία, πρώιμες ισχαιμικές αλλοιώσεις", "χωρίς αιμορραγία, ASPECTS 9",
               "χωρίς οξείες αλλοιώσεις, παλαιό κενοτοπιώδες έμφρακτο"]},
    "occluded_vessel": {
        "en": ["left MCA, M1 segment", "right internal carotid artery", "basilar artery", "left MCA, M2 segment"],
        "es": ["ACM izquierda, segmento M1", "arteria carótida interna derecha", "arteria basilar", "ACM izquierda, segmento M2"],
        "ro": ["ACM stângă, segmentul M1", "artera carotidă internă dreaptă", "artera bazilară", "ACM stângă, segmentul M2"],
        "pl": ["lewa MCA, odcinek M1", "prawa tętnica szyjna wewnętrzna", "tętnica podstawna", "lewa MCA, odcinek M2"],
        "cs": ["levá ACM, úsek M1", "pravá vnitřní krkavice", "arteria basilaris", "levá ACM, úsek M2"],
        "bg": ["лява СМА, сегмент M1", "дясна вътрешна каротидна артерия", "базиларна артерия", "лява СМА, сегмент M2"],
        "el": ["αριστερή ΜΕΑ, τμήμα M1", "δεξιά έσω καρωτίδα", "βασική αρτηρία", "αριστερή ΜΕΑ, τμήμα M2"]},
    "stroke_diagnosis": {
        "en": ["acute ischaemic stroke, cardioembolic", "acute ischaemic stroke, large-artery atherosclerosis",
               "acute ischaemic stroke of undetermined cause"],
        "es": ["ictus isquémico agudo cardioembólico", "ictus isquémico agudo aterotrombótico", "ictus isquémico agudo de causa indeterminada"],
        "ro": ["accident vascular cerebral ischemic acut, cardioembolic", "accident vascular cerebral ischemic acut, aterotrombotic",
               "accident vascular cerebral ischemic acut de cauză nedeterminată"],
        "pl": ["ostry udar niedokrwienny mózgu, sercowo-zatorowy", "ostry udar niedokrwienny mózgu, miażdżycowy",
               "ostry udar niedokrwienny mózgu o nieustalonej przyczynie"],
        "cs": ["akutní ischemická cévní mozková příhoda, kardioembolická", "akutní ischemická cévní mozková příhoda, aterotrombotická",
               "akutní ischemická cévní mozková příhoda nejasné etiologie"],
        "bg": ["остър исхемичен мозъчен инсулт, кардиоемболичен", "остър исхемичен мозъчен инсулт, атеротромботичен",
               "остър исхемичен мозъчен инсулт с неуточнена причина"],
        "el": ["οξύ ισχαιμικό αγγειακό εγκεφαλικό επεισόδιο, καρδιοεμβολικό", "οξύ ισχαιμικό αγγειακό εγκεφαλικό επεισόδιο, αθηροθρομβωτικό",
               "οξύ ισχαιμικό αγγειακό εγκεφαλικό επεισόδιο αδιευκρίνιστης αιτιολογίας"]},
    "thrombolysis_drug": {
        "en": ["alteplase", "tenecteplase"], "es": ["alteplasa", "tenecteplasa"], "ro": ["alteplază", "tenecteplază"],
        "pl": ["alteplaza", "tenekteplaza"], "cs": ["alteplása", "tenekteplása"], "bg": ["алтеплаза", "тенектеплаза"],
        "el": ["αλτεπλάση", "τενεκτεπλάση"]},
    "thrombectomy": {
        "en": ["complete recanalisation, TICI 3", "partial recanalisation, TICI 2b", "not performed"],
        "es": ["recanalización completa, TICI 3", "recanalización parcial, TICI 2b", "no realizada"],
        "ro": ["recanalizare completă, TICI 3", "recanalizare parțială, TICI 2b", "neefectuată"],
        "pl": ["pełna rekanalizacja, TICI 3", "częściowa rekanalizacja, TICI 2b", "niewykonana"],
        "cs": ["úplná rekanalizace, TICI 3", "částečná rekanalizace, TICI 2b", "neprovedena"],
        "bg": ["пълна реканализация, TICI 3", "частична реканализация, TICI 2b", "не е извършена"],
        "el": ["πλήρης επανασηραγγοποίηση, TICI 3", "μερική επανασηραγγοποίηση, TICI 2b", "δεν πραγματοποιήθηκε"]},
    "atrial_fibrillation": {
        "en": ["Holter monitoring", "the admission ECG", "telemetry on day 2"],
        "es": ["Holter de 24 horas", "el ECG de ingreso", "telemetría en el día 2"],
        "ro": ["monitorizare Holter", "ECG la internare", "telemetrie în ziua 2"],
        "pl": ["badanie Holter EKG", "EKG przy przyjęciu", "telemetria w 2. dobie"],
        "cs": ["Holterovo monitorování", "vstupní EKG", "telemetrie 2. den"],
        "bg": ["Холтер мониториране", "ЕКГ при приемането", "телеметрия на 2-ия ден"],
        "el": ["καταγραφή Holter", "ΗΚΓ εισαγωγής", "τηλεμετρία τη 2η ημέρα"]},
    "comorbidities": {
        "en": ["arterial hypertension, type 2 diabetes and dyslipidaemia", "arterial hypertension and heart failure",
               "previous TIA and chronic kidney disease"],
        "es": ["hipertensión arterial, diabetes tipo 2 y dislipemia", "hipertensión arterial e insuficiencia cardiaca",
               "AIT previo y enfermedad renal crónica"],
        "ro": ["hipertensiune arterială, diabet zaharat tip 2 și dislipidemie", "hipertensiune arterială și insuficiență cardiacă",
               "AIT în antecedente și boală cronică de rinichi"],
        "pl": ["nadciśnienie tętnicze, cukrzyca typu 2 i dyslipidemia", "nadciśnienie tętnicze i niewydolność serca",
               "przebyty TIA i przewlekła choroba nerek"],
        "cs": ["arteriální hypertenze, diabetes mellitus 2. typu a dyslipidemie", "arteriální hypertenze a srdeční selhání",
               "prodělaná TIA a chronické onemocnění ledvin"],
        "bg": ["артериална хипертония, захарен диабет тип 2 и дислипидемия", "артериална хипертония и сърдечна недостатъчност",
               "преживяна ТИА и хронично бъбречно заболяване"],
        "el": ["αρτηριακή υπέρταση, σακχαρώδης διαβήτης τύπου 2 και δυσλιπιδαιμία", "αρτηριακή υπέρταση και καρδιακή ανεπάρκεια",
               "προηγούμενο ΠΙΕ και χρόνια νεφρική νόσος"]},
    "smoking": {
        "en": ["current smoker, 20 cigarettes a day", "former smoker", "never smoked"],
        "es": ["fumador activo, 20 cigarrillos al día", "exfumador", "nunca ha fumado"],
        "ro": ["fumător activ, 20 de țigări pe zi", "fost fumător", "nefumător"],
        "pl": ["czynny palacz, 20 papierosów dziennie", "były palacz", "nigdy nie palił"],
        "cs": ["aktivní kuřák, 20 cigaret denně", "bývalý kuřák", "nikdy nekouřil"],
        "bg": ["активен пушач, 20 цигари дневно", "бивш пушач", "никога не е пушил"],
        "el": ["ενεργός καπνιστής, 20 τσιγάρα την ημέρα", "πρώην καπνιστής", "δεν κάπνισε ποτέ"]},
    "dysphagia_screen": {
        "en": ["passed", "failed, nasogastric tube placed"], "es": ["superado", "no superado, se colocó sonda nasogástrica"],
        "ro": ["promovat", "nepromovat, s-a montat sondă nazogastrică"], "pl": ["prawidłowy", "nieprawidłowy, założono zgłębnik nosowo-żołądkowy"],
        "cs": ["v normě", "patologický, zavedena nazogastrická sonda"], "bg": ["нормален", "патологичен, поставена назогастрална сонда"],
        "el": ["φυσιολογικός", "παθολογικός, τοποθετήθηκε ρινογαστρικός σωλήνας"]},
    "complications": {
        "en": ["none", "aspiration pneumonia", "urinary tract infection"], "es": ["ninguna", "neumonía aspirativa", "infección urinaria"],
        "ro": ["fără", "pneumonie de aspirație", "infecție urinară"], "pl": ["brak", "zachłystowe zapalenie płuc", "zakażenie układu moczowego"],
        "cs": ["žádné", "aspirační pneumonie", "infekce močových cest"], "bg": ["няма", "аспирационна пневмония", "уроинфекция"],
        "el": ["καμία", "πνευμονία από εισρόφηση", "ουρολοίμωξη"]},
    "discharge_destination": {
        "en": ["home", "a rehabilitation centre", "a nursing home"], "es": ["domicilio", "centro de rehabilitación", "residencia"],
        "ro": ["domiciliu", "centru de recuperare", "cămin de bătrâni"], "pl": ["dom", "oddział rehabilitacji", "zakład opiekuńczo-leczniczy"],
        "cs": ["domů", "rehabilitační ústav", "domov pro seniory"], "bg": ["дома", "рехабилитационен център", "дом за възрастни хора"],
        "el": ["κατ' οίκον", "κέντρο αποκατάστασης", "οίκος ευγηρίας"]},
}

DRUGS = {
    "anticoagulant": {
        "en": ["apixaban 5 mg twice daily", "dabigatran 150 mg twice daily", "rivaroxaban 20 mg once daily"],
        "es": ["apixabán 5 mg cada 12 horas", "dabigatrán 150 mg cada 12 horas", "rivaroxabán 20 mg cada 24 horas"],
        "ro": ["apixaban 5 mg de două ori pe zi", "dabigatran 150 mg de două ori pe zi", "rivaroxaban 20 mg o dată pe zi"],
        "pl": ["apiksaban 5 mg dwa razy dziennie", "dabigatran 150 mg dwa razy dziennie", "rywaroksaban 20 mg raz dziennie"],
        "cs": ["apixaban 5 mg dvakrát denně", "dabigatran 150 mg dvakrát denně", "rivaroxaban 20 mg jednou denně"],
        "bg": ["апиксабан 5 mg два пъти дневно", "дабигатран 150 mg два пъти дневно", "ривароксабан 20 mg веднъж дневно"],
        "el": ["απιξαμπάνη 5 mg δύο φορές την ημέρα", "νταμπιγατράνη 150 mg δύο φορές την ημέρα", "ριβαροξαμπάνη 20 mg μία φορά την ημέρα"]},
    "statin": {
        "en": ["atorvastatin 80 mg", "rosuvastatin 20 mg", "atorvastatin 40 mg"],
        "es": ["atorvastatina 80 mg", "rosuvastatina 20 mg", "atorvastatina 40 mg"],
        "ro": ["atorvastatină 80 mg", "rosuvastatină 20 mg", "atorvastatină 40 mg"],
        "pl": ["atorwastatyna 80 mg", "rosuwastatyna 20 mg", "atorwastatyna 40 mg"],
        "cs": ["atorvastatin 80 mg", "rosuvastatin 20 mg", "atorvastatin 40 mg"],
        "bg": ["аторвастатин 80 mg", "розувастатин 20 mg", "аторвастатин 40 mg"],
        "el": ["ατορβαστατίνη 80 mg", "ροσουβαστατίνη 20 mg", "ατορβαστατίνη 40 mg"]},
    "antihypertensive": {
        "en": ["ramipril 5 mg", "perindopril 4 mg", "amlodipine 5 mg"], "es": ["ramipril 5 mg", "perindopril 4 mg", "amlodipino 5 mg"],
        "ro": ["ramipril 5 mg", "perindopril 4 mg", "amlodipină 5 mg"], "pl": ["ramipryl 5 mg", "peryndopryl 4 mg", "amlodypina 5 mg"],
        "cs": ["ramipril 5 mg", "perindopril 4 mg", "amlodipin 5 mg"], "bg": ["рамиприл 5 mg", "периндоприл 4 mg", "амлодипин 5 mg"],
        "el": ["ραμιπρίλη 5 mg", "περινδοπρίλη 4 mg", "αμλοδιπίνη 5 mg"]},
}

# Units and number formats: (decimal separator, minutes, heart rate, days, glucose in mmol/l?)
FORMAT = {
    "en": (".", "{} minutes", "{} bpm", "{} days", True),
    "es": (",", "{} minutos", "{} lpm", "{} días", False),
    "ro": (",", "{} minute", "{} bătăi/min", "{} zile", False),
    "pl": (",", "{} min", "{}/min", "{} dni", True),
    "cs": (",", "{} min", "{}/min", "{} dní", True),
    "bg": (",", "{} минути", "{} удара/мин", "{} дни", True),
    "el": (",", "{} λεπτά", "{} σφύξεις/λεπτό", "{} ημέρες", False),
}

# One discharge summary per language: a header line, then sections (shuffled per note between the
# first and the last), each a template whose {concept} slots are filled and located.
TEMPLATES = {
    "en": ("Discharge summary, stroke unit. Patient: {sex}, {age} years.", [
        "Presenting complaint: {presenting_symptoms}. Symptom onset at {symptom_onset_time}; arrival at the emergency department at {arrival_time}, onset-to-door time {onset_to_door}.",
        "On admission: NIHSS {nihss_admission}, GCS {gcs}, blood pressure {blood_pressure}, heart rate {heart_rate}, temperature {temperature}.",
        "Laboratory: glucose {glucose}, LDL cholesterol {ldl_cholesterol}, creatinine {creatinine}, INR {inr}, HbA1c {hba1c}.",
        "Non-contrast CT: {ct_result}. CT angiography, occluded vessel: {occluded_vessel}.",
        "Intravenous thrombolysis with {thrombolysis_drug}, door-to-needle time {door_to_needle}. Mechanical thrombectomy: {thrombectomy}.",
        "Past medical history: {comorbidities}. Smoking: {smoking}. Paroxysmal atrial fibrillation, detected by {atrial_fibrillation}.",
        "Swallowing screen: {dysphagia_screen}. Complications: {complications}.",
    ], "Diagnosis: {stroke_diagnosis}. At discharge: NIHSS {nihss_discharge}, modified Rankin Scale {mrs_discharge}. Medication at discharge: {anticoagulant}, {statin}, {antihypertensive}. Length of stay: {length_of_stay}. Discharged to {discharge_destination}."),
    "es": ("Informe de alta, unidad de ictus. Paciente: {sex}, {age} años.", [
        "Motivo de consulta: {presenting_symptoms}. Inicio de los síntomas a las {symptom_onset_time}; llegada a urgencias a las {arrival_time}, tiempo inicio-puerta {onset_to_door}.",
        "Al ingreso: NIHSS {nihss_admission}, Glasgow {gcs}, tensión arterial {blood_pressure}, frecuencia cardiaca {heart_rate}, temperatura {temperature}.",
        "Analítica: glucemia {glucose}, colesterol LDL {ldl_cholesterol}, creatinina {creatinine}, INR {inr}, HbA1c {hba1c}.",
        "TC sin contraste: {ct_result}. Angio-TC, vaso ocluido: {occluded_vessel}.",
        "Trombólisis intravenosa con {thrombolysis_drug}, tiempo puerta-aguja {door_to_needle}. Trombectomía mecánica: {thrombectomy}.",
        "Antecedentes: {comorbidities}. Tabaco: {smoking}. Fibrilación auricular paroxística, detectada en {atrial_fibrillation}.",
        "Test de disfagia: {dysphagia_screen}. Complicaciones: {complications}.",
    ], "Diagnóstico: {stroke_diagnosis}. Al alta: NIHSS {nihss_discharge}, escala de Rankin modificada {mrs_discharge}. Tratamiento al alta: {anticoagulant}, {statin}, {antihypertensive}. Estancia: {length_of_stay}. Destino al alta: {discharge_destination}."),
    "ro": ("Bilet de externare, unitatea de AVC. Pacient: {sex}, {age} ani.", [
        "Motivul internării: {presenting_symptoms}. Debutul simptomelor la ora {symptom_onset_time}; sosire în UPU la ora {arrival_time}, timp debut-ușă {onset_to_door}.",
        "La internare: NIHSS {nihss_admission}, GCS {gcs}, tensiune arterială {blood_pressure}, frecvență cardiacă {heart_rate}, temperatură {temperature}.",
        "Analize: glicemie {glucose}, colesterol LDL {ldl_cholesterol}, creatinină {creatinine}, INR {inr}, HbA1c {hba1c}.",
        "CT nativ: {ct_result}. Angio-CT, vas ocluzionat: {occluded_vessel}.",
        "Tromboliză intravenoasă cu {thrombolysis_drug}, timp ușă-ac {door_to_needle}. Trombectomie mecanică: {thrombectomy}.",
        "Antecedente: {comorbidities}. Fumat: {smoking}. Fibrilație atrială paroxistică, depistată prin {atrial_fibrillation}.",
        "Test de deglutiție: {dysphagia_screen}. Complicații: {complications}.",
    ], "Diagnostic: {stroke_diagnosis}. La externare: NIHSS {nihss_discharge}, scala Rankin modificată {mrs_discharge}. Tratament la externare: {anticoagulant}, {statin}, {antihypertensive}. Durata internării: {length_of_stay}. Externat la {discharge_destination}."),
    "pl": ("Karta informacyjna, oddział udarowy. Pacjent: {sex}, lat {age}.", [
        "Powód przyjęcia: {presenting_symptoms}. Początek objawów o godz. {symptom_onset_time}; przybycie na SOR o godz. {arrival_time}, czas od zachorowania do przyjęcia {onset_to_door}.",
        "Przy przyjęciu: NIHSS {nihss_admission}, GCS {gcs}, ciśnienie tętnicze {blood_pressure}, tętno {heart_rate}, temperatura {temperature}.",
        "Badania laboratoryjne: glukoza {glucose}, cholesterol LDL {ldl_cholesterol}, kreatynina {creatinine}, INR {inr}, HbA1c {hba1c}.",
        "TK bez kontrastu: {ct_result}. Angio-TK, niedrożne naczynie: {occluded_vessel}.",
        "Tromboliza dożylna: {thrombolysis_drug}, czas od drzwi do igły {door_to_needle}. Trombektomia mechaniczna: {thrombectomy}.",
        "Choroby współistniejące: {comorbidities}. Palenie: {smoking}. Napadowe migotanie przedsionków, wykryte: {atrial_fibrillation}.",
        "Przesiewowa ocena połykania: {dysphagia_screen}. Powikłania: {complications}.",
    ], "Rozpoznanie: {stroke_diagnosis}. Przy wypisie: NIHSS {nihss_discharge}, zmodyfikowana skala Rankina {mrs_discharge}. Leki przy wypisie: {anticoagulant}, {statin}, {antihypertensive}. Czas hospitalizacji: {length_of_stay}. Wypisany: {discharge_destination}."),
    "cs": ("Propouštěcí zpráva, iktová jednotka. Pacient: {sex}, {age} let.", [
        "Důvod přijetí: {presenting_symptoms}. Vznik příznaků v {symptom_onset_time}; příjezd na urgentní příjem v {arrival_time}, doba od vzniku příznaků do příjezdu {onset_to_door}.",
        "Při přijetí: NIHSS {nihss_admission}, GCS {gcs}, krevní tlak {blood_pressure}, tepová frekvence {heart_rate}, teplota {temperature}.",
        "Laboratoř: glykémie {glucose}, LDL cholesterol {ldl_cholesterol}, kreatinin {creatinine}, INR {inr}, HbA1c {hba1c}.",
        "Nativní CT: {ct_result}. CT angiografie, uzavřená tepna: {occluded_vessel}.",
        "Intravenózní trombolýza: {thrombolysis_drug}, doba od příjezdu do podání {door_to_needle}. Mechanická trombektomie: {thrombectomy}.",
        "Osobní anamnéza: {comorbidities}. Kouření: {smoking}. Paroxysmální fibrilace síní, zjištěna: {atrial_fibrillation}.",
        "Screening polykání: {dysphagia_screen}. Komplikace: {complications}.",
    ], "Diagnóza: {stroke_diagnosis}. Při propuštění: NIHSS {nihss_discharge}, modifikovaná Rankinova škála {mrs_discharge}. Medikace při propuštění: {anticoagulant}, {statin}, {antihypertensive}. Délka hospitalizace: {length_of_stay}. Propuštěn: {discharge_destination}."),
    "bg": ("Епикриза, отделение за инсулти. Пациент: {sex}, {age} години.", [
        "Оплаквания: {presenting_symptoms}. Начало на симптомите в {symptom_onset_time} ч.; пристигане в спешното отделение в {arrival_time} ч., време от началото до вратата {onset_to_door}.",
        "При приемането: NIHSS {nihss_admission}, GCS {gcs}, кръвно налягане {blood_pressure}, сърдечна честота {heart_rate}, температура {temperature}.",
        "Изследвания: кръвна захар {glucose}, LDL холестерол {ldl_cholesterol}, креатинин {creatinine}, INR {inr}, HbA1c {hba1c}.",
        "КТ без контраст: {ct_result}. КТ ангиография, запушен съд: {occluded_vessel}.",
        "Венозна тромболиза с {thrombolysis_drug}, време от вратата до иглата {door_to_needle}. Механична тромбектомия: {thrombectomy}.",
        "Придружаващи заболявания: {comorbidities}. Тютюнопушене: {smoking}. Пароксизмално предсърдно мъждене, установено чрез {atrial_fibrillation}.",
        "Тест за гълтане: {dysphagia_screen}. Усложнения: {complications}.",
    ], "Диагноза: {stroke_diagnosis}. При изписването: NIHSS {nihss_discharge}, модифицирана скала на Ранкин {mrs_discharge}. Терапия при изписване: {anticoagulant}, {statin}, {antihypertensive}. Престой: {length_of_stay}. Изписан в {discharge_destination}."),
    "el": ("Σημείωμα εξόδου, μονάδα αγγειακών εγκεφαλικών. Ασθενής: {sex}, {age} ετών.", [
        "Αιτία προσέλευσης: {presenting_symptoms}. Έναρξη συμπτωμάτων στις {symptom_onset_time}· άφιξη στο τμήμα επειγόντων στις {arrival_time}, χρόνος έναρξης-πόρτας {onset_to_door}.",
        "Κατά την εισαγωγή: NIHSS {nihss_admission}, GCS {gcs}, αρτηριακή πίεση {blood_pressure}, καρδιακή συχνότητα {heart_rate}, θερμοκρασία {temperature}.",
        "Εργαστηριακά: γλυκόζη {glucose}, LDL χοληστερόλη {ldl_cholesterol}, κρεατινίνη {creatinine}, INR {inr}, HbA1c {hba1c}.",
        "Αξονική χωρίς σκιαγραφικό: {ct_result}. Αξονική αγγειογραφία, αποφραγμένο αγγείο: {occluded_vessel}.",
        "Ενδοφλέβια θρομβόλυση με {thrombolysis_drug}, χρόνος πόρτας-βελόνας {door_to_needle}. Μηχανική θρομβεκτομή: {thrombectomy}.",
        "Ιστορικό: {comorbidities}. Κάπνισμα: {smoking}. Παροξυσμική κολπική μαρμαρυγή, ανιχνεύθηκε με {atrial_fibrillation}.",
        "Έλεγχος κατάποσης: {dysphagia_screen}. Επιπλοκές: {complications}.",
    ], "Διάγνωση: {stroke_diagnosis}. Κατά την έξοδο: NIHSS {nihss_discharge}, τροποποιημένη κλίμακα Rankin {mrs_discharge}. Φαρμακευτική αγωγή εξόδου: {anticoagulant}, {statin}, {antihypertensive}. Διάρκεια νοσηλείας: {length_of_stay}. Έξοδος: {discharge_destination}."),
}


def num(x: float, decimals: int, sep: str) -> str:
    return f"{x:.{decimals}f}".replace(".", sep)


def values(rng: random.Random, lang: str) -> dict:
    sep, minutes, bpm, days, mmol = FORMAT[lang]
    pick = lambda table, key: table[key][lang][rng.randrange(len(table[key][lang]))]
    v = {key: pick(WORDS, key) for key in WORDS}
    v.update({key: pick(DRUGS, key) for key in DRUGS})
    onset = rng.randrange(6 * 60, 21 * 60)
    otd = rng.randrange(35, 240)
    nihss = rng.randrange(3, 25)
    glucose = rng.uniform(4.8, 12.5)
    v.update({
        "age": str(rng.randrange(45, 90)),
        "symptom_onset_time": f"{onset // 60:02d}:{onset % 60:02d}",
        "arrival_time": f"{(onset + otd) // 60:02d}:{(onset + otd) % 60:02d}",
        "onset_to_door": minutes.format(otd),
        "nihss_admission": str(nihss),
        "gcs": str(rng.randrange(9, 16)),
        "blood_pressure": f"{rng.randrange(130, 211)}/{rng.randrange(70, 116)} mmHg",
        "heart_rate": bpm.format(rng.randrange(58, 129)),
        "temperature": num(rng.uniform(36.1, 38.4), 1, sep) + " °C",
        "glucose": (num(glucose, 1, sep) + (" mmol/L" if lang == "en" else " mmol/l")) if mmol
        else f"{round(glucose * 18)} mg/dl",
        "ldl_cholesterol": num(rng.uniform(1.8, 5.2), 1, sep) + (" mmol/L" if lang == "en" else " mmol/l"),
        "creatinine": f"{rng.randrange(55, 181)} µmol/l",
        "inr": num(rng.uniform(0.9, 1.4), 2, sep),
        "hba1c": num(rng.uniform(5.1, 9.8), 1, sep) + " %",
        "door_to_needle": minutes.format(rng.randrange(18, 76)),
        "nihss_discharge": str(rng.randrange(0, nihss)),
        "mrs_discharge": str(rng.randrange(0, 5)),
        "length_of_stay": days.format(rng.randrange(5, 17)),
    })
    return v


SLOT = re.compile(r"\{(\w+)\}")


def render(template: str, v: dict, offset: int, spans: dict) -> str:
    """Fills the slots, recording each concept's (start, end) in characters of the whole note."""
    out, pos = [], 0
    for m in SLOT.finditer(template):
        out.append(template[pos:m.start()])
        start = offset + sum(len(s) for s in out)
        out.append(v[m.group(1)])
        spans[m.group(1)] = (start, start + len(v[m.group(1)]))
        pos = m.end()
    out.append(template[pos:])
    return "".join(out)


def note(rng: random.Random, lang: str) -> tuple[str, dict, dict]:
    head, sections, tail = TEMPLATES[lang]
    sections = sections[:]
    rng.shuffle(sections)
    v = values(rng, lang)
    spans: dict = {}
    text = ""
    for i, t in enumerate([head] + sections + [tail]):
        if i:
            text += "\n"
        text += render(t, v, len(text), spans)
    return text, v, spans


def main() -> None:
    catalogue = tomllib.loads((ROOT / "configs/concepts-stroke.toml").read_text(encoding="utf-8"))
    concepts = {c["id"]: c for c in catalogue["concepts"]}
    notes_dir = ROOT / "data/sample/notes"
    notes_dir.mkdir(parents=True, exist_ok=True)
    for old in notes_dir.glob("*.txt"):
        old.unlink()
    gold_lines, splits = [], {"train": [], "dev": []}
    for lang in LANGS:
        rng = random.Random(f"medqa-sample-{lang}")
        for n in range(1, PER_LANG + 1):
            doc_id = f"stroke-{lang}-{n:02d}"
            text, v, spans = note(rng, lang)
            assert set(spans) == set(concepts), set(concepts) ^ set(spans)
            (notes_dir / f"{doc_id}.{lang}.txt").write_text(text + "\n", encoding="utf-8")
            split = "train" if n <= TRAIN_NOTES else "dev"
            qas = []
            for cid, (s, e) in spans.items():
                assert text[s:e] == v[cid]
                gold_lines.append({"doc_id": doc_id, "lang": lang, "split": split, "concept": cid,
                                   "answer": v[cid], "start": s, "end": e})
                asked = [lang] + (["en"] if split == "train" and lang != "en" else [])
                for qlang in asked:
                    qas.append({"id": f"{doc_id}-{cid}-{qlang}", "question": concepts[cid]["questions"][qlang],
                                "answers": [{"text": v[cid], "answer_start": s}], "question_lang": qlang})
            splits[split].append({"title": doc_id, "lang": lang, "paragraphs": [{"context": text, "qas": qas}]})
    (notes_dir / "gold.jsonl").write_text(
        "".join(json.dumps(g, ensure_ascii=False) + "\n" for g in gold_lines), encoding="utf-8")
    out = ROOT / "data/sample/qa"
    out.mkdir(parents=True, exist_ok=True)
    for split, articles in splits.items():
        n = sum(len(p["qas"]) for a in articles for p in a["paragraphs"])
        (out / f"{split}.json").write_text(
            json.dumps({"version": "1.1", "data": articles}, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"{split}: {len(articles)} notes, {n} questions")
    print(f"notes: {len(LANGS) * PER_LANG} in {notes_dir}")


if __name__ == "__main__":
    main()

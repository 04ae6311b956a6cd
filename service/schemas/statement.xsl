<?xml version="1.0" encoding="UTF-8"?>
<!--
  The electronic statement (arayış) as a printable HTML page: one A4 portrait sheet.

  XSLT 1.0 and nothing beyond it (no extension functions, no xsl:import or
  xsl:include, no document()), so it runs the same in lxml/libxslt, in a browser
  and in the portal's own engine. The page needs nothing from the network: the
  CSS is inline and names locally installed fonts only ("DejaVu Sans", then
  "Noto Sans"); the QR code arrives as a data: URI.

  Input: a Statement of http://azersu.az/egov/billing-statement/v1 as the
  document element (schemas/statement.xsd).

  Parameters (all strings; an XSLT can't check a signature, so whoever runs it
  says what the check found):
    lang       az (default), en or ru: the language of the labels. Anything else is az.
    verified   'true' only when the caller verified the Statement's signature and
               its signer; anything else (the default) prints the large
               "NOT VERIFIED / TƏSDİQLƏNMƏYİB" banner.
    signer     the subject of the signer's certificate (RFC 4514), shown when verified.
    digest     the SHA-256 (hex) of the signature value, shown when verified.
    verify-url the link to the public verification page (AZERSU_VERIFY_URL?n=<number>&d=<digest>),
               printed as text under the QR code when verified.
    qr         a data: URI of the QR code image of that link, shown when verified.
    note       why the check failed, shown under the banner.
    compact    'true' for the tighter layout that a renderer uses when a statement
               with very long names or addresses would not fit one page otherwise.
-->
<xsl:stylesheet version="1.0"
                xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
                xmlns:st="http://azersu.az/egov/billing-statement/v1"
                exclude-result-prefixes="st">

  <xsl:output method="html" encoding="UTF-8" indent="yes" doctype-system="about:legacy-compat"/>

  <xsl:param name="lang" select="'az'"/>
  <xsl:param name="verified" select="''"/>
  <xsl:param name="signer" select="''"/>
  <xsl:param name="digest" select="''"/>
  <xsl:param name="verify-url" select="''"/>
  <xsl:param name="qr" select="''"/>
  <xsl:param name="note" select="''"/>
  <xsl:param name="compact" select="''"/>

  <!-- The language actually used: az unless en or ru was asked for. -->
  <xsl:variable name="L">
    <xsl:choose>
      <xsl:when test="$lang = 'en' or $lang = 'ru'"><xsl:value-of select="$lang"/></xsl:when>
      <xsl:otherwise>az</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="is-verified" select="$verified = 'true'"/>

  <!-- ================================================================ labels -->

  <xsl:variable name="t-document">
    <xsl:choose>
      <xsl:when test="$L = 'en'">ELECTRONIC STATEMENT</xsl:when>
      <xsl:when test="$L = 'ru'">ЭЛЕКТРОННАЯ СПРАВКА</xsl:when>
      <xsl:otherwise>ELEKTRON ARAYIŞ</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-service">
    <xsl:choose>
      <xsl:when test="$L = 'en'">“Provision of invoice and payment information for the last 12 months on water supply and wastewater disposal services to residential consumers”</xsl:when>
      <xsl:when test="$L = 'ru'">«Предоставление сведений о счетах и платежах за последние 12 месяцев по услугам водоснабжения и водоотведения потребителям группы „население“»</xsl:when>
      <xsl:otherwise>“Əhali qrupu üzrə istehlakçılara su təchizatı və tullantı sularının axıdılması xidmətlərinə dair son 12 ay üzrə faktura və ödəniş məlumatlarının verilməsi”</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-eservice">
    <xsl:choose>
      <xsl:when test="$L = 'en'">e-service on e-gov.az</xsl:when>
      <xsl:when test="$L = 'ru'">электронная услуга на e-gov.az</xsl:when>
      <xsl:otherwise>e-gov.az elektron xidməti</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-number">
    <xsl:choose>
      <xsl:when test="$L = 'en'">Statement No.</xsl:when>
      <xsl:when test="$L = 'ru'">Справка №</xsl:when>
      <xsl:otherwise>Arayış №</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-issued">
    <xsl:choose>
      <xsl:when test="$L = 'en'">Issued</xsl:when>
      <xsl:when test="$L = 'ru'">Дата и время выдачи</xsl:when>
      <xsl:otherwise>Verilmə tarixi və vaxtı</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-subscriber">
    <xsl:choose>
      <xsl:when test="$L = 'en'">Subscriber</xsl:when>
      <xsl:when test="$L = 'ru'">Абонент</xsl:when>
      <xsl:otherwise>Abonent</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-code">
    <xsl:choose>
      <xsl:when test="$L = 'en'">Subscriber code</xsl:when>
      <xsl:when test="$L = 'ru'">Код абонента</xsl:when>
      <xsl:otherwise>Abonent kodu</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-name">
    <xsl:choose>
      <xsl:when test="$L = 'en'">Last name, first name, patronymic</xsl:when>
      <xsl:when test="$L = 'ru'">Фамилия, имя, отчество</xsl:when>
      <xsl:otherwise>Soyadı, adı, ata adı</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-address">
    <xsl:choose>
      <xsl:when test="$L = 'en'">Residential address</xsl:when>
      <xsl:when test="$L = 'ru'">Адрес проживания</xsl:when>
      <xsl:otherwise>Yaşayış ünvanı</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-persons">
    <xsl:choose>
      <xsl:when test="$L = 'en'">Persons served</xsl:when>
      <xsl:when test="$L = 'ru'">Количество обслуживаемых лиц</xsl:when>
      <xsl:otherwise>Xidmət göstərilən nəfər sayı</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-services">
    <xsl:choose>
      <xsl:when test="$L = 'en'">Services provided</xsl:when>
      <xsl:when test="$L = 'ru'">Вид услуги</xsl:when>
      <xsl:otherwise>Göstərilən xidmətin növü</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-water">
    <xsl:choose>
      <xsl:when test="$L = 'en'">water supply</xsl:when>
      <xsl:when test="$L = 'ru'">водоснабжение</xsl:when>
      <xsl:otherwise>su təchizatı</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-wastewater">
    <xsl:choose>
      <xsl:when test="$L = 'en'">wastewater disposal</xsl:when>
      <xsl:when test="$L = 'ru'">водоотведение</xsl:when>
      <xsl:otherwise>tullantı sularının axıdılması</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-meter">
    <xsl:choose>
      <xsl:when test="$L = 'en'">Meter type</xsl:when>
      <xsl:when test="$L = 'ru'">Тип счётчика</xsl:when>
      <xsl:otherwise>Sayğacın tipi</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-meter-MECHANICAL">
    <xsl:choose>
      <xsl:when test="$L = 'en'">mechanical meter</xsl:when>
      <xsl:when test="$L = 'ru'">механический счётчик</xsl:when>
      <xsl:otherwise>mexaniki sayğac</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-meter-SMART_CARD">
    <xsl:choose>
      <xsl:when test="$L = 'en'">smart-card (prepaid) meter</xsl:when>
      <xsl:when test="$L = 'ru'">счётчик со смарт-картой (предоплата)</xsl:when>
      <xsl:otherwise>smart-kartlı (ön ödənişli) sayğac</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-meter-NONE">
    <xsl:choose>
      <xsl:when test="$L = 'en'">no meter (billed by norm)</xsl:when>
      <xsl:when test="$L = 'ru'">без счётчика (по нормативу)</xsl:when>
      <xsl:otherwise>sayğac yoxdur (norma üzrə)</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-table">
    <xsl:choose>
      <xsl:when test="$L = 'en'">Invoices and payments of the last 12 months</xsl:when>
      <xsl:when test="$L = 'ru'">Счета и платежи за последние 12 месяцев</xsl:when>
      <xsl:otherwise>Son 12 ay üzrə faktura və ödəniş məlumatları</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-year">
    <xsl:choose>
      <xsl:when test="$L = 'en'">Report year</xsl:when>
      <xsl:when test="$L = 'ru'">Отчётный год</xsl:when>
      <xsl:otherwise>Hesabat ili</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-month">
    <xsl:choose>
      <xsl:when test="$L = 'en'">Report month</xsl:when>
      <xsl:when test="$L = 'ru'">Отчётный месяц</xsl:when>
      <xsl:otherwise>Hesabat ayı</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-consumption">
    <xsl:choose>
      <xsl:when test="$L = 'en'">Invoiced consumption, m³</xsl:when>
      <xsl:when test="$L = 'ru'">Начисленный объём, м³</xsl:when>
      <xsl:otherwise>Faktura sərfiyyatı, m³</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-invoiced">
    <xsl:choose>
      <xsl:when test="$L = 'en'">Invoiced amount</xsl:when>
      <xsl:when test="$L = 'ru'">Сумма по счёту</xsl:when>
      <xsl:otherwise>Faktura məbləği</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-paid">
    <xsl:choose>
      <xsl:when test="$L = 'en'">Paid amount</xsl:when>
      <xsl:when test="$L = 'ru'">Оплаченная сумма</xsl:when>
      <xsl:otherwise>Ödənilmiş məbləğ</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-total">
    <xsl:choose>
      <xsl:when test="$L = 'en'">Total</xsl:when>
      <xsl:when test="$L = 'ru'">Итого</xsl:when>
      <xsl:otherwise>Cəmi</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-no-months">
    <xsl:choose>
      <xsl:when test="$L = 'en'">No invoices or payments in this period.</xsl:when>
      <xsl:when test="$L = 'ru'">За этот период счетов и платежей нет.</xsl:when>
      <xsl:otherwise>Bu dövrdə faktura və ödəniş yoxdur.</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-months">
    <xsl:choose>
      <xsl:when test="$L = 'en'">January|February|March|April|May|June|July|August|September|October|November|December|</xsl:when>
      <xsl:when test="$L = 'ru'">Январь|Февраль|Март|Апрель|Май|Июнь|Июль|Август|Сентябрь|Октябрь|Ноябрь|Декабрь|</xsl:when>
      <xsl:otherwise>Yanvar|Fevral|Mart|Aprel|May|İyun|İyul|Avqust|Sentyabr|Oktyabr|Noyabr|Dekabr|</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-signed">
    <xsl:choose>
      <xsl:when test="$L = 'en'">This document is signed with an electronic signature. Signer's certificate:</xsl:when>
      <xsl:when test="$L = 'ru'">Документ подписан электронной подписью. Сертификат подписавшего:</xsl:when>
      <xsl:otherwise>Bu sənəd elektron imza ilə imzalanmışdır. İmzalayanın sertifikatı:</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-checked">
    <xsl:choose>
      <xsl:when test="$L = 'en'">The signature was checked when this copy was made: valid.</xsl:when>
      <xsl:when test="$L = 'ru'">Подпись проверена при изготовлении этой копии: действительна.</xsl:when>
      <xsl:otherwise>Bu nüsxə hazırlanarkən imza yoxlanılıb: etibarlıdır.</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-digest">
    <xsl:choose>
      <xsl:when test="$L = 'en'">SHA-256 of the signature value (also in the QR code):</xsl:when>
      <xsl:when test="$L = 'ru'">SHA-256 значения подписи (также в QR-коде):</xsl:when>
      <xsl:otherwise>İmza dəyərinin SHA-256 həşi (QR kodda da var):</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-online">
    <xsl:choose>
      <xsl:when test="$L = 'en'">Check this statement online at Azərsu: scan the QR code or open</xsl:when>
      <xsl:when test="$L = 'ru'">Проверить справку онлайн в Azərsu: отсканируйте QR-код или откройте</xsl:when>
      <xsl:otherwise>Arayışı Azərsu-nun saytında yoxlayın: QR kodu skan edin və ya bu ünvanı açın</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-how">
    <xsl:choose>
      <xsl:when test="$L = 'en'">To check the signed file:</xsl:when>
      <xsl:when test="$L = 'ru'">Проверить подписанный файл:</xsl:when>
      <xsl:otherwise>İmzalı faylı yoxlamaq üçün:</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-how-print">
    <xsl:choose>
      <xsl:when test="$L = 'en'">To check this printed copy against it:</xsl:when>
      <xsl:when test="$L = 'ru'">Сверить эту печатную копию с ним:</xsl:when>
      <xsl:otherwise>Bu çap nüsxəsini onunla tutuşdurmaq üçün:</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-file">
    <xsl:choose>
      <xsl:when test="$L = 'en'">FILE</xsl:when>
      <xsl:when test="$L = 'ru'">ФАЙЛ</xsl:when>
      <xsl:otherwise>FAYL</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-banner-note">
    <xsl:choose>
      <xsl:when test="$L = 'en'">The electronic signature of this statement was not confirmed. This copy is not a valid document.</xsl:when>
      <xsl:when test="$L = 'ru'">Электронная подпись этой справки не подтверждена. Эта копия не является действительным документом.</xsl:when>
      <xsl:otherwise>Bu arayışın elektron imzası təsdiqlənməyib. Bu nüsxə etibarlı sənəd deyil.</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-unsigned">
    <xsl:choose>
      <xsl:when test="$L = 'en'">The electronic signature was NOT confirmed:</xsl:when>
      <xsl:when test="$L = 'ru'">Электронная подпись НЕ подтверждена:</xsl:when>
      <xsl:otherwise>Elektron imza TƏSDİQLƏNMƏYİB:</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>
  <xsl:variable name="t-unknown-reason">
    <xsl:choose>
      <xsl:when test="$L = 'en'">no check was made.</xsl:when>
      <xsl:when test="$L = 'ru'">проверка не выполнялась.</xsl:when>
      <xsl:otherwise>yoxlama aparılmayıb.</xsl:otherwise>
    </xsl:choose>
  </xsl:variable>

  <!-- ================================================================ the page -->

  <xsl:template match="/">
    <html lang="{$L}">
      <head>
        <title>
          <xsl:value-of select="concat($t-number, ' ', st:Statement/st:StatementNumber)"/>
        </title>
        <style><xsl:call-template name="css"/></style>
      </head>
      <body>
        <xsl:attribute name="class">
          <xsl:choose>
            <xsl:when test="$is-verified">verified</xsl:when>
            <xsl:otherwise>not-verified</xsl:otherwise>
          </xsl:choose>
          <xsl:if test="$compact = 'true'"> compact</xsl:if>
        </xsl:attribute>
        <div class="sheet">
          <xsl:if test="not($is-verified)">
            <div class="banner" id="not-verified" role="alert">
              <div class="banner-title">NOT VERIFIED / TƏSDİQLƏNMƏYİB</div>
              <xsl:if test="$L = 'ru'"><div class="banner-title-ru">НЕ ПОДТВЕРЖДЕНО</div></xsl:if>
              <div class="banner-note"><xsl:value-of select="$t-banner-note"/></div>
            </div>
          </xsl:if>
          <xsl:apply-templates select="st:Statement"/>
        </div>
      </body>
    </html>
  </xsl:template>

  <xsl:template match="st:Statement">
    <header class="head">
      <div class="brand">
        <span class="drop"/>
        <span class="wordmark">AZƏRSU</span>
      </div>
      <div class="issuer"><xsl:value-of select="st:Issuer"/></div>
      <div class="eservice"><xsl:value-of select="$t-eservice"/></div>
    </header>

    <h1 class="doc-title"><xsl:value-of select="$t-document"/></h1>
    <p class="service-title"><xsl:value-of select="$t-service"/></p>

    <table class="meta">
      <tr>
        <th><xsl:value-of select="$t-number"/></th>
        <td class="number" id="statement-number"><xsl:value-of select="st:StatementNumber"/></td>
        <th><xsl:value-of select="$t-issued"/></th>
        <td id="issued-at"><xsl:call-template name="datetime"><xsl:with-param name="value" select="st:IssuedAt"/></xsl:call-template></td>
      </tr>
    </table>

    <xsl:apply-templates select="st:Subscriber"/>

    <h2><xsl:value-of select="$t-table"/></h2>
    <table class="months" id="months">
      <thead>
        <tr>
          <th class="year"><xsl:value-of select="$t-year"/></th>
          <th class="month"><xsl:value-of select="$t-month"/></th>
          <th class="num"><xsl:value-of select="$t-consumption"/></th>
          <th class="num"><xsl:value-of select="concat($t-invoiced, ', ', st:Currency)"/></th>
          <th class="num"><xsl:value-of select="concat($t-paid, ', ', st:Currency)"/></th>
        </tr>
      </thead>
      <tbody>
        <xsl:apply-templates select="st:Periods/st:Period"/>
        <xsl:if test="not(st:Periods/st:Period)">
          <tr class="empty"><td colspan="5"><xsl:value-of select="$t-no-months"/></td></tr>
        </xsl:if>
      </tbody>
      <tfoot>
        <tr class="totals" id="totals">
          <th colspan="2"><xsl:value-of select="$t-total"/></th>
          <td class="num"><xsl:value-of select="st:Totals/st:ConsumptionM3"/></td>
          <td class="num"><xsl:value-of select="st:Totals/st:InvoicedAmount"/></td>
          <td class="num"><xsl:value-of select="st:Totals/st:PaidAmount"/></td>
        </tr>
      </tfoot>
    </table>

    <xsl:call-template name="signature-block">
      <xsl:with-param name="number" select="st:StatementNumber"/>
    </xsl:call-template>
  </xsl:template>

  <xsl:template match="st:Subscriber">
    <h2><xsl:value-of select="$t-subscriber"/></h2>
    <table class="subscriber" id="subscriber">
      <tr>
        <th><xsl:value-of select="$t-code"/></th>
        <td id="subscriber-code"><xsl:value-of select="st:Code"/></td>
      </tr>
      <tr>
        <th><xsl:value-of select="$t-name"/></th>
        <td id="subscriber-name" class="name">
          <xsl:value-of select="st:LastName"/>
          <xsl:text> </xsl:text>
          <xsl:value-of select="st:FirstName"/>
          <xsl:if test="normalize-space(st:Patronymic)">
            <xsl:text> </xsl:text>
            <xsl:value-of select="st:Patronymic"/>
          </xsl:if>
        </td>
      </tr>
      <tr>
        <th><xsl:value-of select="$t-address"/></th>
        <td id="subscriber-address"><xsl:value-of select="st:Address"/></td>
      </tr>
      <tr>
        <th><xsl:value-of select="$t-persons"/></th>
        <td id="persons-count"><xsl:value-of select="st:PersonsCount"/></td>
      </tr>
      <tr>
        <th><xsl:value-of select="$t-services"/></th>
        <td id="services">
          <xsl:variable name="water" select="st:WaterSupply = 'true' or st:WaterSupply = '1'"/>
          <xsl:variable name="waste" select="st:Wastewater = 'true' or st:Wastewater = '1'"/>
          <xsl:if test="$water"><xsl:value-of select="$t-water"/></xsl:if>
          <xsl:if test="$water and $waste">, </xsl:if>
          <xsl:if test="$waste"><xsl:value-of select="$t-wastewater"/></xsl:if>
          <xsl:if test="not($water or $waste)">—</xsl:if>
        </td>
      </tr>
      <tr>
        <th><xsl:value-of select="$t-meter"/></th>
        <td id="meter-type">
          <xsl:choose>
            <xsl:when test="st:MeterType = 'MECHANICAL'"><xsl:value-of select="$t-meter-MECHANICAL"/></xsl:when>
            <xsl:when test="st:MeterType = 'SMART_CARD'"><xsl:value-of select="$t-meter-SMART_CARD"/></xsl:when>
            <xsl:when test="st:MeterType = 'NONE'"><xsl:value-of select="$t-meter-NONE"/></xsl:when>
            <xsl:otherwise><xsl:value-of select="st:MeterType"/></xsl:otherwise>
          </xsl:choose>
        </td>
      </tr>
    </table>
  </xsl:template>

  <xsl:template match="st:Period">
    <tr class="period">
      <td class="year"><xsl:value-of select="st:Year"/></td>
      <td class="month">
        <xsl:variable name="name">
          <xsl:call-template name="nth">
            <xsl:with-param name="list" select="$t-months"/>
            <xsl:with-param name="n" select="number(st:Month)"/>
          </xsl:call-template>
        </xsl:variable>
        <xsl:choose>
          <xsl:when test="string($name)"><xsl:value-of select="$name"/></xsl:when>
          <xsl:otherwise><xsl:value-of select="st:Month"/></xsl:otherwise>
        </xsl:choose>
      </td>
      <td class="num"><xsl:value-of select="st:ConsumptionM3"/></td>
      <td class="num"><xsl:value-of select="st:InvoicedAmount"/></td>
      <td class="num"><xsl:value-of select="st:PaidAmount"/></td>
    </tr>
  </xsl:template>

  <xsl:template name="signature-block">
    <xsl:param name="number"/>
    <footer class="signature" id="signature">
      <xsl:choose>
        <xsl:when test="$is-verified">
          <table class="signature-layout">
            <tr>
              <td class="signature-text">
                <p class="signed">
                  <xsl:value-of select="$t-signed"/>
                  <xsl:text> </xsl:text>
                  <span class="subject" id="signer"><xsl:value-of select="$signer"/></span>
                </p>
                <p class="checked"><xsl:value-of select="$t-checked"/></p>
                <p class="digest-label"><xsl:value-of select="$t-digest"/></p>
                <p class="digest" id="digest">
                  <xsl:call-template name="grouped"><xsl:with-param name="hex" select="$digest"/></xsl:call-template>
                </p>
                <p class="how">
                  <xsl:value-of select="$t-how"/>
                  <xsl:text> </xsl:text>
                  <code>azersu-statement verify <xsl:value-of select="$t-file"/></code>
                </p>
                <p class="how">
                  <xsl:value-of select="$t-how-print"/>
                  <xsl:text> </xsl:text>
                  <code>azersu-statement verify <xsl:value-of select="$t-file"/> --digest SHA-256</code>
                </p>
              </td>
              <td class="qr">
                <xsl:if test="string($qr)">
                  <img id="qr" src="{$qr}" alt="{$verify-url}"/>
                </xsl:if>
              </td>
            </tr>
            <xsl:if test="string($verify-url)">
              <tr>
                <td class="online" colspan="2">
                  <p class="online-label"><xsl:value-of select="$t-online"/>:</p>
                  <p class="verify-url" id="verify-url"><xsl:value-of select="$verify-url"/></p>
                </td>
              </tr>
            </xsl:if>
          </table>
        </xsl:when>
        <xsl:otherwise>
          <p class="unsigned">
            <xsl:value-of select="$t-unsigned"/>
            <xsl:text> </xsl:text>
            <span id="verification-note">
              <xsl:choose>
                <xsl:when test="string($note)"><xsl:value-of select="$note"/></xsl:when>
                <xsl:otherwise><xsl:value-of select="$t-unknown-reason"/></xsl:otherwise>
              </xsl:choose>
            </span>
          </p>
          <p class="how">
            <xsl:value-of select="$t-how"/>
            <xsl:text> </xsl:text>
            <code>azersu-statement verify <xsl:value-of select="$t-file"/></code>
          </p>
        </xsl:otherwise>
      </xsl:choose>
    </footer>
  </xsl:template>

  <!-- ================================================================ helpers -->

  <!-- The n-th item of a "a|b|c|" list, or nothing. -->
  <xsl:template name="nth">
    <xsl:param name="list"/>
    <xsl:param name="n"/>
    <xsl:choose>
      <xsl:when test="not($n &gt;= 1) or not(contains($list, '|'))"/>
      <xsl:when test="$n = 1"><xsl:value-of select="substring-before($list, '|')"/></xsl:when>
      <xsl:otherwise>
        <xsl:call-template name="nth">
          <xsl:with-param name="list" select="substring-after($list, '|')"/>
          <xsl:with-param name="n" select="$n - 1"/>
        </xsl:call-template>
      </xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <!-- 2026-11-26T21:05:05+04:00 as 26.11.2026 21:05:05 (UTC+04:00); anything else as it is. -->
  <xsl:template name="datetime">
    <xsl:param name="value"/>
    <xsl:choose>
      <xsl:when test="string-length($value) = 25 and substring($value, 11, 1) = 'T'">
        <xsl:value-of select="concat(substring($value, 9, 2), '.', substring($value, 6, 2), '.',
                                     substring($value, 1, 4), ' ', substring($value, 12, 8),
                                     ' (UTC', substring($value, 20, 6), ')')"/>
      </xsl:when>
      <xsl:otherwise><xsl:value-of select="$value"/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <!-- A hex digest in groups of eight, for a person to read and type. -->
  <xsl:template name="grouped">
    <xsl:param name="hex"/>
    <xsl:value-of select="substring($hex, 1, 8)"/>
    <xsl:if test="string-length($hex) &gt; 8">
      <xsl:text> </xsl:text>
      <xsl:call-template name="grouped">
        <xsl:with-param name="hex" select="substring($hex, 9)"/>
      </xsl:call-template>
    </xsl:if>
  </xsl:template>

  <xsl:template name="css">
@page { size: A4 portrait; margin: 14mm 15mm 12mm 15mm; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; }
body { margin: 0; color: #1b1f24; background: #e9edf1;
  font-family: "DejaVu Sans", "Noto Sans", sans-serif; font-size: 9pt; line-height: 1.35; }
.sheet { width: 210mm; min-height: 297mm; margin: 0 auto; padding: 14mm 15mm 12mm 15mm; background: #fff; }
@media print {
  body { background: #fff; }
  .sheet { width: auto; min-height: 0; margin: 0; padding: 0; }
}
.banner { border: 2.5pt solid #b00020; color: #b00020; background: #fdecee; text-align: center;
  padding: 3mm 4mm; margin: 0 0 5mm 0; }
.banner-title { font-size: 22pt; font-weight: bold; letter-spacing: 0.5pt; line-height: 1.15; }
.banner-title-ru { font-size: 16pt; font-weight: bold; }
.banner-note { font-size: 9.5pt; margin-top: 1.5mm; }
.head { border-bottom: 2pt solid #0b5fa5; padding-bottom: 2.5mm; margin-bottom: 4mm; }
.brand { color: #0b5fa5; }
.drop { display: inline-block; width: 4.2mm; height: 4.2mm; background: #0b5fa5;
  border-radius: 0 50% 50% 50%; transform: rotate(45deg); margin: 0 2.5mm 0 1mm; }
.wordmark { font-size: 20pt; font-weight: bold; letter-spacing: 1.5pt; }
.issuer { font-size: 10.5pt; font-weight: bold; margin-top: 0.5mm; }
.eservice { font-size: 8pt; color: #4a5561; }
.doc-title { font-size: 15pt; text-align: center; letter-spacing: 1pt; margin: 0 0 1.5mm 0; }
.service-title { text-align: center; font-size: 8.8pt; color: #2d3740; margin: 0 8mm 4mm 8mm; }
h2 { font-size: 10pt; color: #0b5fa5; margin: 4mm 0 1.5mm 0; border-bottom: 0.6pt solid #c5d3e0;
  padding-bottom: 0.6mm; }
table { border-collapse: collapse; width: 100%; }
.meta th, .subscriber th { text-align: left; font-weight: normal; color: #4a5561; padding: 0.8mm 2mm 0.8mm 0;
  vertical-align: top; white-space: nowrap; }
.meta td, .subscriber td { padding: 0.8mm 4mm 0.8mm 0; vertical-align: top; }
.meta td.number { font-weight: bold; font-family: "DejaVu Sans Mono", "Noto Sans Mono", monospace; }
.subscriber th { width: 56mm; white-space: normal; }
.subscriber td.name { font-weight: bold; font-size: 10pt; }
.months th, .months td { border: 0.6pt solid #9fb3c6; padding: 1.1mm 2mm; }
.months thead th { background: #e5eef7; font-size: 8.3pt; text-align: center; vertical-align: bottom; }
.months td.num { text-align: right; font-variant-numeric: tabular-nums; }
.months td.year { text-align: center; }
.months tbody tr:nth-child(even) td { background: #f6f9fc; }
.months tfoot th, .months tfoot td { font-weight: bold; background: #e5eef7; border-top: 1.2pt solid #0b5fa5; }
.months tfoot th { text-align: left; }
.months tr.empty td { text-align: center; color: #4a5561; }
.signature { margin-top: 4mm; border-top: 0.6pt solid #9fb3c6; padding-top: 2mm; font-size: 8pt; }
.signature p { margin: 0 0 1.2mm 0; }
.signature-layout td { vertical-align: top; padding: 0; }
.signature-text { padding-right: 4mm; }
.subject { font-weight: bold; overflow-wrap: anywhere; }
.digest { font-family: "DejaVu Sans Mono", "Noto Sans Mono", monospace; font-size: 8.5pt; }
code { font-family: "DejaVu Sans Mono", "Noto Sans Mono", monospace; font-size: 7.4pt; word-break: break-all; }
td.qr { width: 34mm; text-align: right; }
td.online { padding-top: 0.5mm; text-align: right; }
.signature .online p { margin: 0; }
.verify-url { font-family: "DejaVu Sans Mono", "Noto Sans Mono", monospace; font-size: 7.4pt;
  word-break: break-all; }
.compact .verify-url { font-size: 6.6pt; }
td.qr img { width: 32mm; height: 32mm; }
.checked { color: #1d6b2f; font-weight: bold; }
.unsigned { color: #b00020; font-weight: bold; }
/* The tighter layout, for statements whose long names or address would not fit one page. */
body.compact { font-size: 7.6pt; line-height: 1.2; }
.compact .banner { padding: 1.5mm 3mm; margin-bottom: 3mm; }
.compact .banner-title { font-size: 17pt; }
.compact .banner-title-ru { font-size: 12pt; }
.compact .banner-note { font-size: 8pt; margin-top: 0.5mm; }
.compact .head { padding-bottom: 1.2mm; margin-bottom: 2mm; }
.compact .wordmark { font-size: 15pt; }
.compact .issuer { font-size: 9pt; }
.compact .doc-title { font-size: 12pt; }
.compact .service-title { font-size: 7.6pt; margin-bottom: 2mm; }
.compact h2 { font-size: 8.6pt; margin: 2mm 0 1mm 0; }
.compact .meta th, .compact .subscriber th, .compact .meta td, .compact .subscriber td { padding-top: 0.3mm; padding-bottom: 0.3mm; }
.compact .subscriber th { width: 44mm; }
.compact .subscriber td.name { font-size: 8.4pt; }
.compact .months th, .compact .months td { padding: 0.5mm 1.5mm; }
.compact .months thead th { font-size: 7.2pt; }
.compact .signature { margin-top: 2.5mm; padding-top: 1.5mm; font-size: 7pt; }
.compact .signature p { margin-bottom: 0.6mm; }
.compact .digest { font-size: 7.4pt; }
.compact code { font-size: 6.6pt; }
.compact td.qr { width: 28mm; }
.compact td.qr img { width: 26mm; height: 26mm; }
  </xsl:template>

</xsl:stylesheet>
